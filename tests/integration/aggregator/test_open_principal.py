"""The open principal a credit request is quoted under (``SqlQuotingStore.open_principal``), on SQLite and PostgreSQL:
what the accept's locked read counts (``SqlAcceptRepository.exposure``) — still owed on active and defaulted loans,
accepts in flight, an accept whose loan is recorded counted once — read in one statement that takes no lock, so a
credit request does not wait on an accept of the same borrower holding its row."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from store.accepts import _OPEN_PRINCIPAL, SqlAcceptStore
from store.db import Database
from store.quoting import SqlQuotingStore
from tests.support.ledger_facts import add_loans, loan_row, loans_in_every_status, new_quote

pytestmark = pytest.mark.integration

USDC = 10**6


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_schema: Callable[[str], str]
) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('open-principal') / 'open_principal.db'}"
    else:
        url = postgres_schema("open_principal")
    db = Database(url)
    db.migrate()
    yield db
    db.dispose()


def test_the_quote_time_read_counts_what_the_accepts_locked_read_counts(database: Database) -> None:
    # being accepted, its loan recorded already: counted once
    borrower, recorded = new_quote(database, status="accepting", principal=300 * USDC)
    new_quote(database, status="accepting", principal=50 * USDC, borrower_id=borrower)  # another accept in flight
    new_quote(database, status="offered", principal=900 * USDC, borrower_id=borrower)  # only offered: owes nothing
    other, _ = new_quote(database, status="accepting", principal=700 * USDC)
    recorded_loan = loan_row(borrower, "active", 300 * USDC, 250 * USDC, quote_id=recorded)
    add_loans(database, [recorded_loan, *loans_in_every_status(borrower, other)])  # 600 + 200 + 1,400 owed
    quoting = SqlQuotingStore(database)
    with SqlAcceptStore(database).unit_of_work() as uow:
        locked = uow.accepts.exposure(borrower, excluding_quote="none")
    assert locked.by_asset == {"USDC": (250 + 50 + 600 + 200 + 1_400) * USDC}
    assert quoting.open_principal(borrower) == locked
    assert quoting.open_principal(other).by_asset == {"USDC": (9_000 + 700) * USDC}
    assert quoting.open_principal(str(uuid.uuid4())).by_asset == {}, "a borrower with nothing open"


def test_the_quote_time_read_does_not_wait_on_an_accept_holding_the_borrowers_row(
    postgres_schema: Callable[[str], str],
) -> None:
    """On PostgreSQL, where an accept locks the borrower's row (SQLite takes one writer at a time, and no row locks):
    the read answers while the lock is held; waiting on it, it would not answer before the holder let go."""
    database = Database(postgres_schema("open_principal_unlocked"))
    database.migrate()
    borrower, _ = new_quote(database, status="accepting", principal=100 * USDC)
    holding, release = threading.Event(), threading.Event()

    def accept() -> None:
        with SqlAcceptStore(database).unit_of_work() as uow:
            uow.accepts.exposure(borrower, excluding_quote="none")  # the borrower's row locked till the end
            holding.set()
            release.wait(60)

    with ThreadPoolExecutor(2) as pool:
        held = pool.submit(accept)
        try:
            assert holding.wait(30)
            read = pool.submit(SqlQuotingStore(database).open_principal, borrower)
            assert read.result(timeout=30).by_asset == {"USDC": 100 * USDC}
            assert not held.done(), "the row was still locked when the read answered"
        finally:
            release.set()
        held.result(timeout=30)
    database.dispose()


def test_the_accepts_in_flight_are_read_by_the_borrower_and_status_index(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """By the borrower's index alone the read went through every quote the borrower was ever shown (about thirteen a
    request): in `bench.quote_path_ab` a request's CPU grew slice after slice, 22.5 to 40.2 ms against 18.6 to 20.7
    for the tree before the exposure check. It goes by (borrower, status) now (migration 0036)."""
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('open-principal-plan') / 'plan.db'}")
    db.migrate()
    try:
        with db.engine.connect() as connection:
            statement = _OPEN_PRINCIPAL.compile(connection, compile_kwargs={"literal_binds": True})
            plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}"))
    finally:
        db.dispose()
    assert "ix_quotes_borrower_status" in plan, plan
