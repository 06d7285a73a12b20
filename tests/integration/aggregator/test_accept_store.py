"""The accept saga's SQL repository: the borrower's exposure counts what is still owed on active and defaulted
loans (not on repaid, liquidated or written-off ones) plus the accepts in flight; the quote and its accept record
read in one statement are what the two reads give."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from aggregator.accept_saga import AcceptRecord, AcceptStep
from store.accepts import SqlAcceptStore
from store.aggregator import LoanRow
from store.api import BorrowerRow
from store.db import Database
from tests.support.ledger_facts import add_quote

pytestmark = pytest.mark.integration

USDC = 10**6
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('accepts') / 'accepts.db'}")
    db.migrate()
    yield db
    db.dispose()


def _loan(borrower_id: str, status: str, principal: int, outstanding: int | None) -> LoanRow:
    return LoanRow(
        id=str(uuid.uuid4()),
        borrower_id=borrower_id,
        chain_name="ethereum-local",
        chain_id=31337,
        contract="0x" + "11" * 20,
        status=status,
        asset="USDC",
        principal=principal,
        outstanding_principal=outstanding,
        offer_digest="0x" + uuid.uuid4().hex * 2,
        created_at=NOW,
    )


def test_exposure_counts_what_is_still_owed_on_active_and_defaulted_loans(database: Database) -> None:
    borrower, other = str(uuid.uuid4()), str(uuid.uuid4())
    with database.unit_of_work() as uow:
        for borrower_id in (borrower, other):
            uow.session.add(
                BorrowerRow(
                    id=borrower_id, wallet_address="0x" + borrower_id[:8] * 5, jurisdiction="US-NY", created_at=NOW
                )
            )
        uow.session.flush()
        uow.session.add_all(
            [
                _loan(borrower, "active", 1_000 * USDC, 600 * USDC),
                _loan(borrower, "active", 200 * USDC, None),  # recorded from the receipt, before any repayment
                _loan(borrower, "defaulted", 1_500 * USDC, 1_400 * USDC),
                _loan(borrower, "repaid", 5_000 * USDC, 0),
                _loan(borrower, "liquidated", 5_000 * USDC, 0),
                _loan(borrower, "written_off", 5_000 * USDC, 0),
                _loan(other, "defaulted", 9_000 * USDC, 9_000 * USDC),
            ]
        )
        uow.commit()
    with SqlAcceptStore(database).unit_of_work() as uow:
        exposure = uow.accepts.exposure(borrower, excluding_quote="none")
    assert exposure.by_asset == {"USDC": (600 + 200 + 1_400) * USDC}


def test_an_accept_in_flight_whose_loan_is_recorded_counts_once(database: Database) -> None:
    """The ledger recorded the loan of a quote still 'accepting' (the indexer ahead of the saga, or an accept failed
    after another transaction spent its offer): counted once, as the loan; it was counted as both, for good."""
    quote_id, other_quote = str(uuid.uuid4()), str(uuid.uuid4())
    borrower = _accepting(database, quote_id, 300 * USDC, None, "0x" + quote_id[:8] * 5)
    _accepting(database, other_quote, 50 * USDC, borrower, "")
    loan = _loan(borrower, "active", 300 * USDC, 250 * USDC)
    loan.quote_id = quote_id
    with database.unit_of_work() as uow:
        uow.session.add(loan)
        uow.commit()
    with SqlAcceptStore(database).unit_of_work() as uow:
        exposure = uow.accepts.exposure(borrower, excluding_quote="none")
    assert exposure.by_asset == {"USDC": (250 + 50) * USDC}, "the loan's outstanding and the other accept in flight"


def _accepting(database: Database, quote_id: str, principal: int, borrower_id: str | None, wallet: str) -> str:
    """A pool quote of ``principal`` being accepted (of a new borrower with ``wallet`` unless ``borrower_id``)."""
    return add_quote(
        database,
        borrower_address=wallet,
        offer_digest="0x" + uuid.uuid4().hex * 2,
        provider_id="pool:usdc",
        chain_name="ethereum-local",
        chain_id=31337,
        contract="0x" + "11" * 20,
        kind="pool",
        offer={"principal": str(principal)},
        borrower_id=borrower_id,
        status="accepting",
        quote_id=quote_id,
    )


def test_the_quote_and_its_accept_record_are_read_together_as_apart(database: Database) -> None:
    quote_id = str(uuid.uuid4())
    add_quote(
        database,
        borrower_address="0x" + quote_id[:8] * 5,
        offer_digest="0x" + uuid.uuid4().hex * 2,
        provider_id="pool:usdc",
        kind="pool",
        chain_name="ethereum-local",
        chain_id=31337,
        contract="0x" + "11" * 20,
        status="offered",
        quote_id=quote_id,
    )
    store = SqlAcceptStore(database)
    with store.unit_of_work() as uow:
        assert uow.accepts.quote_and_record("no-such-quote") is None
        quote = uow.accepts.quote(quote_id)
        assert quote is not None
        assert uow.accepts.quote_and_record(quote_id) == (quote, None)
        record = AcceptRecord(
            quote_id=quote_id,
            request_id=quote.request_id,
            borrower_id=quote.borrower_id,
            kind="pool",
            chain_name="ethereum-local",
            attempt=1,
            step=AcceptStep.SUBMITTED,
            owner="accept-1",
            lease_until=NOW,
            updated_at=NOW,
        )
        uow.accepts.lock(quote, record)
        uow.commit()
    with store.unit_of_work() as uow:
        locked = uow.accepts.quote(quote_id)
        assert locked is not None
        assert locked.status == "accepting"
        assert uow.accepts.quote_and_record(quote_id) == (locked, uow.accepts.record(quote_id)) == (locked, record)


def _left_at(
    database: Database, step: AcceptStep, chain_name: str = "ethereum-local", lender_state: str | None = None
) -> str:
    """A traditional accept of a new quote on ``chain_name`` left at ``step`` by a dead process; its quote id."""
    store = SqlAcceptStore(database)
    quote_id = str(uuid.uuid4())
    add_quote(
        database,
        borrower_address="0x" + quote_id[:8] * 5,
        offer_digest="0x" + uuid.uuid4().hex * 2,
        provider_id="sim-bank",
        chain_name=chain_name,
        chain_id=31337,
        contract="0x" + "11" * 20,
        status="offered",
        quote_id=quote_id,
    )
    with store.unit_of_work() as uow:
        quote = uow.accepts.quote(quote_id)
        assert quote is not None
        record = AcceptRecord(
            quote_id=quote_id,
            request_id=quote.request_id,
            borrower_id=quote.borrower_id,
            kind="traditional",
            chain_name=chain_name,
            attempt=1,
            step=AcceptStep.SIMULATED,
            owner="accept-dead",
            lease_until=NOW,
            updated_at=NOW,
        )
        uow.accepts.lock(quote, record)
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
