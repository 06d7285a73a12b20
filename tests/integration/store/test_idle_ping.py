"""A pooled PostgreSQL connection is pinged only when it has been idle (``store.db._ping_when_idle``): units of work
back to back send no ping (``pool_pre_ping`` sent one per checkout, a server transaction each), and a connection the
server dropped while it idled is replaced before use, as ``pool_pre_ping`` replaced it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from store import db
from store.db import Database

pytestmark = pytest.mark.integration


@pytest.fixture
def database(postgres_url: str) -> Iterator[Database]:
    database = Database(postgres_url)
    yield database
    database.engine.dispose()


@pytest.fixture
def pings(database: Database, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sent: list[int] = []
    dialect = database.engine.dialect
    real = dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        sent.append(1)
        return real(dbapi_connection)  # type: ignore[arg-type]

    monkeypatch.setattr(dialect, "do_ping", counted)
    return sent


def _backend(database: Database) -> int:
    with database.unit_of_work() as uow:
        return int(uow.session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def test_units_of_work_back_to_back_send_no_ping(database: Database, pings: list[int]) -> None:
    backends = {_backend(database) for _ in range(5)}
    assert len(backends) == 1  # the same pooled connection each time
    assert pings == []


def test_a_connection_dropped_while_idle_is_pinged_and_replaced(
    database: Database, pings: list[int], postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend(database)
    with sa.create_engine(postgres_url).connect() as other:  # the server drops the pooled connection
        assert other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar_one()
    monkeypatch.setattr(db, "PING_IDLE_AFTER", 0.0)  # idle "long enough" without waiting
    second = _backend(database)  # no error: the ping found it dead and the pool connected afresh
    assert second != first
    assert pings == [1]
