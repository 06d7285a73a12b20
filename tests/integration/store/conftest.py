"""Fixtures of the store's integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from store.db import Database


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database with no schema yet, on SQLite and on PostgreSQL (a schema named after the test's module): a
    migration's test builds the schema before it (``tests.support.migrations.upgrade``) and rows to carry over."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'creditmesh.db'}")
    else:
        schema: Callable[[str], str] = request.getfixturevalue("postgres_schema")
        database = Database(schema(request.module.__name__.rsplit(".", 1)[-1]))
    yield database
    database.dispose()
