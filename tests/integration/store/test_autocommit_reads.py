"""A read outside a transaction (``store.autocommit``) leaves a pooled PostgreSQL connection's prepared statements in
place; a read-only unit of work's ROLLBACK makes psycopg forget (and deallocate) them — why the API's polls read the
first way."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from store.autocommit import autocommit_session
from store.db import Database

pytestmark = pytest.mark.integration


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    database = Database(postgres_schema("autocommit_reads"))
    yield database
    database.engine.dispose()


def _prepare_one(database: Database) -> int:
    """A statement prepared on the pooled connection (as psycopg does after a statement's fifth run); its backend."""
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.execute("SELECT 41 + 1", prepare=True).fetchall()
        return int(connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _prepared_on(database: Database) -> tuple[int, int]:
    """The pooled connection's backend and how many statements are prepared on it (the server's view)."""
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        backend = int(connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
        prepared = int(connection.execute(sa.text("SELECT count(*) FROM pg_prepared_statements")).scalar_one())
        return backend, prepared


def test_a_read_in_autocommit_keeps_the_connections_prepared_statements(database: Database) -> None:
    backend = _prepare_one(database)
    with autocommit_session(database) as session:
        assert session.execute(sa.text("SELECT 1")).scalar_one() == 1
    assert _prepared_on(database) == (backend, 1)  # the same pooled connection, its statement still prepared


def test_a_read_only_unit_of_work_clears_them(database: Database) -> None:
    backend = _prepare_one(database)
    with database.unit_of_work() as uow:  # BEGIN, the read, and ROLLBACK when it closes
        assert uow.session.execute(sa.text("SELECT 1")).scalar_one() == 1
    assert _prepared_on(database) == (backend, 0)
