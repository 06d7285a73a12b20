"""A pooled PostgreSQL connection keeps its prepared statements across a read outside a transaction
(``store.autocommit``) and across a unit of work that only read (it ends with COMMIT); psycopg forgets (and
deallocates) them at a ROLLBACK, which a unit of work still ends with when it wrote without committing or failed —
and what it wrote is then undone."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase

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


def test_a_read_only_unit_of_work_keeps_them(database: Database) -> None:
    backend = _prepare_one(database)
    with database.unit_of_work() as uow:  # BEGIN, the read, and COMMIT when it closes (nothing written)
        assert uow.session.execute(sa.text("SELECT 1")).scalar_one() == 1
    assert _prepared_on(database) == (backend, 1)
    with database.read_only() as uow:  # the reporting reads' unit of work (the primary here: no read-only URL)
        assert uow.session.execute(sa.text("SELECT 2")).scalar_one() == 2
    assert _prepared_on(database) == (backend, 1)


@pytest.fixture
def ledger(database: Database) -> sa.Table:
    table = sa.Table("uow_rows", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    table.create(database.engine)
    return table


def _ids(database: Database, table: sa.Table) -> list[int]:
    with database.engine.connect() as connection:
        return [row.id for row in connection.execute(sa.select(table.c.id).order_by(table.c.id))]


def test_a_unit_of_work_that_wrote_without_committing_is_still_rolled_back(
    database: Database, ledger: sa.Table
) -> None:
    backend = _prepare_one(database)
    with database.unit_of_work() as uow:
        assert uow.session.execute(sa.select(sa.func.count()).select_from(ledger)).scalar_one() == 0
        uow.session.execute(sa.insert(ledger).values(id=1))  # a write after a read, never committed
    with database.unit_of_work() as uow:
        uow.session.execute(sa.text("INSERT INTO uow_rows (id) VALUES (2)"))  # a write in plain SQL
    with database.unit_of_work() as uow:  # a data-modifying WITH starts like no write
        uow.session.execute(sa.text("WITH made AS (INSERT INTO uow_rows (id) VALUES (3) RETURNING id) SELECT 1"))
    assert _ids(database, ledger) == []
    assert _prepared_on(database) == (backend, 0)  # rolled back: psycopg forgot them, as before


def test_a_unit_of_work_left_by_an_error_after_reading_is_rolled_back(database: Database, ledger: sa.Table) -> None:
    backend = _prepare_one(database)

    def read_then_fail() -> None:
        with database.unit_of_work() as uow:
            uow.session.execute(sa.select(ledger.c.id)).all()
            raise LookupError("the caller's own failure")

    with pytest.raises(LookupError):
        read_then_fail()
    assert _prepared_on(database) == (backend, 0)


def test_a_committed_unit_of_work_keeps_what_it_wrote(database: Database, ledger: sa.Table) -> None:
    with database.unit_of_work() as uow:
        uow.session.execute(sa.insert(ledger).values(id=4))
        uow.commit()
    with database.unit_of_work() as uow:  # read again after the commit: a new transaction that only reads
        assert uow.session.execute(sa.select(ledger.c.id)).scalars().all() == [4]
    assert _ids(database, ledger) == [4]


def test_a_unit_of_work_whose_failed_commit_was_handled_is_left_cleanly(database: Database, ledger: sa.Table) -> None:
    """A commit whose flush failed (a unique key another process inserted first), the error caught: leaving the unit
    of work must not fail again (the session refuses every use but a rollback), and nothing of it stays."""

    class Base(DeclarativeBase):
        pass

    class Row(Base):
        __table__ = ledger

    with database.unit_of_work() as uow:
        uow.session.add(Row(id=5))
        uow.commit()
    with database.unit_of_work() as uow:
        uow.session.add(Row(id=5))
        with pytest.raises(sa.exc.IntegrityError):
            uow.commit()
    assert _ids(database, ledger) == [5]
