"""The accept saga's SQL repository: the borrower's exposure counts what is still owed on active and defaulted
loans (not on repaid, liquidated or written-off ones) plus the accepts in flight; the quote and its accept record
read in one statement are what the two reads give."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from aggregator.accept_saga import AcceptStep
from store.accepts import SqlAcceptStore
from store.db import Database
from tests.support.ledger_facts import (
    add_borrower,
    add_loans,
    loan_row,
    loans_in_every_status,
    lock_accept,
    new_quote,
)

pytestmark = pytest.mark.integration

USDC = 10**6
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('accepts') / 'accepts.db'}")
    db.migrate()
    yield db
    db.dispose()


def test_exposure_counts_what_is_still_owed_on_active_and_defaulted_loans(database: Database) -> None:
    borrower, other = add_borrower(database), add_borrower(database)
    add_loans(database, loans_in_every_status(borrower, other))
    with SqlAcceptStore(database).unit_of_work() as uow:
        exposure = uow.accepts.exposure(borrower, excluding_quote="none")
    assert exposure.by_asset == {"USDC": (600 + 200 + 1_400) * USDC}, "owed on the active and defaulted loans"


def test_an_accept_in_flight_whose_loan_is_recorded_counts_once(database: Database) -> None:
    """The ledger recorded the loan of a quote still 'accepting' (the indexer ahead of the saga, or an accept failed
    after another transaction spent its offer): counted once, as the loan; it was counted as both, for good."""
    borrower, quote_id = new_quote(database, status="accepting", principal=300 * USDC)
    new_quote(database, status="accepting", principal=50 * USDC, borrower_id=borrower)
    add_loans(database, [loan_row(borrower, "active", 300 * USDC, 250 * USDC, quote_id=quote_id)])
    with SqlAcceptStore(database).unit_of_work() as uow:
        exposure = uow.accepts.exposure(borrower, excluding_quote="none")
    assert exposure.by_asset == {"USDC": (250 + 50) * USDC}, "the loan's outstanding and the other accept in flight"


def test_the_quote_and_its_accept_record_are_read_together_as_apart(database: Database) -> None:
    _, quote_id = new_quote(database, status="offered")
    store = SqlAcceptStore(database)
    with store.unit_of_work() as uow:
        assert uow.accepts.quote_and_record("no-such-quote") is None
        quote = uow.accepts.quote(quote_id)
        assert quote is not None
        assert uow.accepts.quote_and_record(quote_id) == (quote, None)
    record = lock_accept(store, quote_id, NOW, step=AcceptStep.SUBMITTED)
    with store.unit_of_work() as uow:
        locked = uow.accepts.quote(quote_id)
        assert locked is not None
        assert locked.status == "accepting"
        assert uow.accepts.quote_and_record(quote_id) == (locked, uow.accepts.record(quote_id)) == (locked, record)


def _left_at(
    database: Database, step: AcceptStep, chain_name: str = "ethereum-local", lender_state: str | None = None
) -> str:
    """A traditional accept of a new quote on ``chain_name`` left at ``step`` by a dead process; its quote id."""
    _, quote_id = new_quote(
        database, status="offered", provider_id="sim-bank", kind="traditional", chain_name=chain_name
    )
    store = SqlAcceptStore(database)
    record = lock_accept(store, quote_id, NOW, owner="accept-dead")
    with store.unit_of_work() as uow:
        assert uow.accepts.save(replace(record, step=step, lender_state=lender_state))
        uow.commit()
    return quote_id


def test_a_loan_whose_lender_refused_to_fund_it_is_not_claimed_again(database: Database) -> None:
    """A traditional accept left at ``recorded`` with ``fund-refused`` is done (an operator takes it up): the SQL
    claim read it as unfinished, so recovery sent the refused funding instruction again every half lease, for ever.
    One still owed its funding instruction is claimed as before."""
    records = {
        state: _left_at(database, AcceptStep.RECORDED, lender_state=state) for state in ("fund-refused", "reserved")
    }
    with SqlAcceptStore(database).unit_of_work() as uow:
        claimable = {record.quote_id for record in uow.accepts.claimable(NOW, limit=1_000, chains=["ethereum-local"])}
    assert records["reserved"] in claimable
    assert records["fund-refused"] not in claimable


def test_an_accept_in_flight_on_a_chain_no_longer_served_is_left_and_reported(database: Database) -> None:
    """The chains file dropped a chain while an accept's transaction was in flight there: recovery claimed it and
    looked the chain up by name (KeyError, every pass, ending the pass before the accepts behind it). It is left (only
    that chain can settle it) and reported; one that sent nothing there is still cancelled, and the served chains'
    accepts are claimed as before."""
    in_flight = _left_at(database, AcceptStep.SUBMITTED, chain_name="dropped-local")
    sent_nothing = _left_at(database, AcceptStep.RESERVED, chain_name="dropped-local", lender_state="reserved")
    served = _left_at(database, AcceptStep.SUBMITTED)
    with SqlAcceptStore(database).unit_of_work() as uow:
        claimable = {record.quote_id for record in uow.accepts.claimable(NOW, limit=1_000, chains=["ethereum-local"])}
        assert uow.accepts.in_flight_chains() >= {"dropped-local", "ethereum-local"}
    assert {served, sent_nothing} <= claimable
    assert in_flight not in claimable
