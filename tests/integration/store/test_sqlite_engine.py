"""SQLite engines: a file database gets its folder; an in-memory one, or a URL that is not one, touches no folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ArgumentError

from store.db import make_engine


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite+pysqlite://"])
def test_an_in_memory_database_creates_no_folder(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    engine = make_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
    engine.dispose()
    assert list(tmp_path.iterdir()) == []


def test_a_file_database_gets_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "cm.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    engine.dispose()
    assert path.is_file()


@pytest.mark.parametrize("url", ["sqlite:/cm.db", "sqlite:/data/cm.db"])
def test_a_malformed_url_is_refused_before_any_folder_is_made(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArgumentError, match="Could not parse"):
        make_engine(url)
    assert list(tmp_path.iterdir()) == []  # the old split on "///" made ./sqlite:/ here
