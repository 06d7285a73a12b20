"""A test's migrated database on SQLite or on the session's PostgreSQL, for tests that run on both (a fixture
parametrized ``["sqlite", "postgresql"]`` passes its request)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from store.db import Database


@contextmanager
def migrated(request: pytest.FixtureRequest, directory: Path, name: str) -> Iterator[Database]:
    """A migrated database named ``name``: a SQLite file in ``directory``, or a PostgreSQL schema of the session's
    server (``postgres_schema``), as ``request.param`` says; disposed after."""
    if request.param == "sqlite":
        url = f"sqlite:///{directory / f'{name}.db'}"
    else:
        postgres_schema: Callable[[str], str] = request.getfixturevalue("postgres_schema")
        url = postgres_schema(name)
    database = Database(url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()
