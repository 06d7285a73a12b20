"""Facts that reach a loan out of chain order: a receipt's facts are applied at once, and the indexer's confirmed
events of earlier blocks that no receipt recorded (the borrower's own repayment, a ``markDefault`` whose receipt was
not applied) arrive after them — or a receipt is applied late. The loan is then the chain's, replayed in order, and
only the events still true of it are written: a repayment that happened is told, a default of a loan closed since is
not."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aggregator.ledger import SOURCE_RECEIPT, record_batch, record_events
from aggregator.ledger_memory import InMemoryLedger
from aggregator.loan_events import fact_event, told_late
from aggregator.projection import (
    ACTIVE,
    DEFAULTED,
    LIQUIDATED,
    REPAID,
    WRITTEN_OFF,
    Fact,
    RepaymentEntry,
    caught_up,
    moved,
    new_loan,
    opened,
)
from chain.events import ChainEvent, EventBatch
from tests.unit.test_ledger_projection import CHAIN, NOW, PRINCIPAL, Loan

pytestmark = pytest.mark.unit


def _types(ledger: InMemoryLedger) -> list[str]:
    return [event.event_type for _, event in ledger.published]


def _full_repayment(loan: Loan, interest: int, principal: int) -> tuple[ChainEvent, ChainEvent]:
    """A repayment of everything owed and the ``LoanClosed`` of its transaction (one block, logs 0 and 1)."""
    repaid = loan.repaid(interest, principal, 0)
    closed = replace(loan.event("LoanClosed", tx=repaid.tx_hash, block=repaid.block_number), log_index=1)
    return repaid, closed


def _indexed(ledger: InMemoryLedger, *events: ChainEvent) -> None:
    """The indexer's range over ``events``' blocks, as the chain has them."""
    hashes = {event.block_number: event.block_hash for event in events}
    record_batch(ledger, CHAIN, EventBatch(CHAIN.chain_id, min(hashes), max(hashes), events, block_hashes=hashes))


def test_a_default_indexed_after_the_receipt_of_the_repayment_that_closed_the_loan_leaves_it_repaid() -> None:
    """Block 102: the operator's ``markDefault`` (its receipt never applied); block 103: the borrower pays all it
    owes through us, its receipt applied at once. The indexer's 102 must not turn the closed loan ``defaulted``
    (with the default's outstanding principal), nor announce a default after its closing."""
    ledger, loan = InMemoryLedger(), Loan()
    record_events(ledger, CHAIN, [loan.opened()], now=NOW)
    default = loan.event("LoanDefaulted", outstandingPrincipal=PRINCIPAL, accruedInterest=50)
    repaid, closed = _full_repayment(loan, 50, PRINCIPAL)
    record_events(ledger, CHAIN, [repaid, closed], source=SOURCE_RECEIPT)
    assert ledger.loans[loan.id].status == REPAID

    _indexed(ledger, default, repaid, closed)
    state = ledger.loans[loan.id]
    assert (state.status, state.outstanding_principal, state.principal_paid, state.interest_paid) == (
        REPAID,
        0,
        PRINCIPAL,
        50,
    )
    assert state.closed_tx_hash == repaid.tx_hash
    assert _types(ledger) == ["loan.opened", "loan.repayment", "loan.closed"], "no loan.defaulted after loan.closed"
    assert "LoanDefaulted" in [fact.event for _, fact in ledger.facts_by_id.values()], "the default stays a fact"
    assert [e.outstanding_principal for e in ledger.entries if isinstance(e, RepaymentEntry)] == [0]


def test_the_borrowers_own_repayment_indexed_after_our_receipt_counts_and_leaves_nothing_outstanding() -> None:
    """Block 102: the borrower repays part from its wallet (no receipt of ours); block 103: the rest through us.
    The late repayment must not set its block's outstanding principal on the closed loan; it is still told."""
    ledger, loan = InMemoryLedger(), Loan()
    record_events(ledger, CHAIN, [loan.opened()], now=NOW)
    own = loan.repaid(10, 400_000_000, 600_000_000)
    ours, closed = _full_repayment(loan, 5, 600_000_000)
    record_events(ledger, CHAIN, [ours, closed], source=SOURCE_RECEIPT)

    _indexed(ledger, own, ours, closed)
    state = ledger.loans[loan.id]
    assert (state.status, state.outstanding_principal, state.principal_paid, state.interest_paid) == (
        REPAID,
        0,
        PRINCIPAL,
        15,
    )
    repayments = [e for e in ledger.entries if isinstance(e, RepaymentEntry)]
    assert [(e.principal_paid, e.outstanding_principal) for e in repayments] == [
        (400_000_000, 600_000_000),
        (600_000_000, 0),
    ]
    assert _types(ledger) == ["loan.opened", "loan.repayment", "loan.closed", "loan.repayment"], "it happened: told"
    assert ledger.published[-1][1].data["outstanding_principal"] == "600000000", "as of its own block"


def test_a_default_receipt_applied_after_a_partial_repayments_receipt_keeps_the_later_outstanding() -> None:
    """Receipts only: the default job resumes its timed-out ``markDefault`` (block 102) after a partial repayment's
    receipt (block 103) was applied. The loan is in default with what the repayment left outstanding, and the
    default is announced: it is true of the loan now."""
    ledger, loan = InMemoryLedger(), Loan()
    record_events(ledger, CHAIN, [loan.opened()], now=NOW)
    default = loan.event("LoanDefaulted", outstandingPrincipal=PRINCIPAL, accruedInterest=50)
    partial = loan.repaid(50, 300_000_000, PRINCIPAL - 300_000_000)
    record_events(ledger, CHAIN, [partial], source=SOURCE_RECEIPT)
    record_events(ledger, CHAIN, [default], source=SOURCE_RECEIPT)
    state = ledger.loans[loan.id]
    assert (state.status, state.outstanding_principal, state.principal_paid) == (
        DEFAULTED,
        PRINCIPAL - 300_000_000,
        300_000_000,
    )
    assert _types(ledger) == ["loan.opened", "loan.repayment", "loan.defaulted"]

    repaid, closed = _full_repayment(loan, 0, PRINCIPAL - 300_000_000)  # then the rest, in order
    record_events(ledger, CHAIN, [repaid, closed], source=SOURCE_RECEIPT)
    assert (ledger.loans[loan.id].status, ledger.loans[loan.id].outstanding_principal) == (REPAID, 0)
    _indexed(ledger, default, partial, repaid, closed)  # the indexer finds it all recorded: nothing changes
    assert ledger.loans[loan.id].status == REPAID
    assert _types(ledger) == ["loan.opened", "loan.repayment", "loan.defaulted", "loan.repayment", "loan.closed"]


def test_a_default_receipt_applied_after_the_closing_receipt_is_a_fact_only() -> None:
    ledger, loan = InMemoryLedger(), Loan()
    record_events(ledger, CHAIN, [loan.opened()], now=NOW)
    default = loan.event("LoanDefaulted", outstandingPrincipal=PRINCIPAL, accruedInterest=50)
    repaid, closed = _full_repayment(loan, 50, PRINCIPAL)
    record_events(ledger, CHAIN, [repaid, closed], source=SOURCE_RECEIPT)
    assert record_events(ledger, CHAIN, [default], source=SOURCE_RECEIPT) == 1
    state = ledger.loans[loan.id]
    assert (state.status, state.outstanding_principal, state.closed_tx_hash) == (REPAID, 0, repaid.tx_hash)
    assert _types(ledger) == ["loan.opened", "loan.repayment", "loan.closed"]


def test_facts_in_chain_order_in_one_application_are_applied_one_on_another() -> None:
    """New facts of one application come in chain order: the later ones of the same application are not taken
    for facts applied before (a default then a full repayment in one range announces both)."""
    ledger, loan = InMemoryLedger(), Loan()
    record_events(ledger, CHAIN, [loan.opened()], now=NOW)
    default = loan.event("LoanDefaulted", outstandingPrincipal=PRINCIPAL, accruedInterest=50)
    repaid, closed = _full_repayment(loan, 50, PRINCIPAL)
    _indexed(ledger, closed, default, repaid)
    assert ledger.loans[loan.id].status == REPAID
    assert _types(ledger) == ["loan.opened", "loan.defaulted", "loan.repayment", "loan.closed"]


# ---------------------------------------------------------------------------------------------- the pure parts


def _fact(event: ChainEvent, fact_id: int) -> Fact:
    return Fact.of_event(event, fact_id)


def test_caught_up_replays_the_loan_in_chain_order_where_moving_on_top_does_not_commute() -> None:
    loan = Loan()
    opening = _fact(loan.opened(), 1)
    default = _fact(loan.event("LoanDefaulted", outstandingPrincipal=PRINCIPAL, accruedInterest=50), 4)
    repaid, closed = (_fact(event, n) for event, n in zip(_full_repayment(loan, 50, PRINCIPAL), (2, 3), strict=True))
    state = opened(new_loan(CHAIN, loan.digest, None, None, via_accept=False, now=NOW), CHAIN, opening)
    for fact in (repaid, closed):
        state, _ = moved(state, fact)
    on_top, _ = moved(state, default)
    assert (on_top.status, on_top.outstanding_principal) == (DEFAULTED, PRINCIPAL), "the old way: wrong"

    result = caught_up(state, CHAIN, [opening, default, repaid, closed])
    assert result is not None
    assert result.loan is not None
    assert (result.loan.status, result.loan.outstanding_principal, result.loan.principal_paid) == (REPAID, 0, PRINCIPAL)
    assert [type(entry) for entry in result.entries] == [RepaymentEntry]
    assert caught_up(state, CHAIN, [default, repaid, closed]) is None, "no opening: nothing to replay from"


@pytest.mark.parametrize(
    ("status", "told"),
    [(DEFAULTED, True), (REPAID, False), (LIQUIDATED, False), (WRITTEN_OFF, False), (ACTIVE, False)],
)
def test_a_late_default_is_told_only_of_a_loan_still_in_default(status: str, told: bool) -> None:
    loan = Loan()
    default = fact_event(_fact(loan.event("LoanDefaulted", outstandingPrincipal=1, accruedInterest=0), 1), status)
    repayment = fact_event(_fact(loan.repaid(1, 1, 0), 2), status)
    assert default is not None
    assert repayment is not None
    assert told_late(default, status) is told
    assert told_late(repayment, status), "a repayment that happened is always told"
