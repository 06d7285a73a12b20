"""An accept whose simulation the chain refused because another accept of the same quote (another process's) locked
it, or even opened its loan, after this one read the quote: it answers as a repeated accept would — the loan, or
409 accept-in-progress — not 422 chain-rejected; a refusal with no other accept behind it stands (in-memory fake)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aggregator.accept_saga import AcceptRecord, AcceptStep, InMemoryAcceptStore
from aggregator.accepting import Accepted
from aggregator.errors import AcceptInProgress
from tests.unit.test_accept_recovery import LEASE, START, Clock, FlakyLender, _quote, _service

pytestmark = pytest.mark.unit


def _taken(store: InMemoryAcceptStore, *, loan_id: str | None) -> None:
    """Another process locked the pool quote q1 (and, with ``loan_id``, opened its loan)."""
    quote = replace(_quote(), kind="pool", provider_id="pool:ethereum-local:USDC")
    store.tables.requests["r1"] = "quoted"
    store.tables.quotes[quote.id] = quote
    record = AcceptRecord(
        quote_id="q1",
        request_id="r1",
        borrower_id="b1",
        kind="pool",
        chain_name="ethereum-local",
        attempt=1,
        step=AcceptStep.SUBMITTED,
        owner="other-process",
        lease_until=START + LEASE,
        updated_at=START,
    )
    with store.unit_of_work() as uow:
        uow.accepts.lock(quote, record)
        uow.commit()
    if loan_id is not None:
        store.tables.records["q1"] = replace(record, step=AcceptStep.RECORDED, loan_id=loan_id)
        store.tables.quotes["q1"] = replace(quote, status="accepted")


def _after_refusal(store: InMemoryAcceptStore) -> Accepted | None:
    return _service(store, FlakyLender(outages=0), Clock())._taken_meanwhile("b1", "q1")


def test_a_quote_another_accept_opened_meanwhile_answers_with_its_loan() -> None:
    store = InMemoryAcceptStore()
    _taken(store, loan_id="loan-1")
    assert _after_refusal(store) == Accepted(loan_id="loan-1", quote_id="q1")


def test_a_quote_another_accept_holds_answers_accept_in_progress() -> None:
    store = InMemoryAcceptStore()
    _taken(store, loan_id=None)
    with pytest.raises(AcceptInProgress, match="took it meanwhile"):
        _after_refusal(store)


def test_a_refusal_with_no_other_accept_behind_it_stands() -> None:
    store = InMemoryAcceptStore()
    store.tables.requests["r1"] = "quoted"
    store.tables.quotes["q1"] = replace(_quote(), kind="pool")
    assert _after_refusal(store) is None
