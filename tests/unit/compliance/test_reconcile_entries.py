"""Reconciliation of a chain's repayments with the ledger's entries and the lenders' payment records, on facts and
records given directly: a payment reference the chain credited twice, though the lender reported the payment once,
is reported (it was matched twice); a ledger entry booked on another loan than its log's is a mismatch (it was
matched on its transaction and log alone); a run ending before the head judges no record's present state."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from compliance.reconcile import (
    Category,
    ChainScope,
    EntryRecord,
    Fact,
    LoanRecord,
    PaymentRecord,
    Records,
    reconcile_chain,
)

pytestmark = pytest.mark.unit

AGGREGATOR, TIMELOCK = "0x" + "11" * 20, "0x" + "33" * 20
FIRST, SECOND = "0x" + "ab" * 32, "0x" + "cd" * 32
REFERENCE = "0x" + "ee" * 32
SCOPE = ChainScope("ethereum-local", 31337, 1, 100, "0x" + "99" * 20, TIMELOCK)


def _fact(event: str, block: int, tx: str, **args: Any) -> Fact:
    return Fact("ethereum-local", "CreditAggregator", AGGREGATOR, event, args, block, tx, 0)


def _opened(number: int, digest: str, block: int, tx: str) -> Fact:
    return _fact(
        "LoanOpened",
        block,
        tx,
        loanId=number,
        principal=1000,
        collateralAmount=10,
        offerDigest=bytes.fromhex(digest[2:]),
    )


def _loan(loan_id: str, number: int, digest: str, block: int, tx: str, outstanding: int) -> LoanRecord:
    return LoanRecord(
        loan_id=loan_id,
        onchain_loan_id=number,
        offer_digest=digest,
        principal=1000,
        status="active",
        outstanding_principal=outstanding,
        collateral_amount=10,
        tx_hash=tx,
        block_number=block,
        quote_id="q-" + loan_id,
        accepted=True,
        interest_paid=0,
        principal_paid=1000 - outstanding,
    )


def _repaid(block: int, tx: str, number: int, outstanding: int, reference: str) -> Fact:
    return _fact(
        "LoanRepaid",
        block,
        tx,
        loanId=number,
        interestPaid=0,
        principalPaid=100,
        outstandingPrincipal=outstanding,
        paymentRef=bytes.fromhex(reference[2:]),
    )


def test_a_payment_reference_credited_twice_is_reported_once_matched() -> None:
    """The lender reported one payment of 100 (pay-1); the operator's key recorded it, then sent
    recordOffchainRepayment again with the same reference: the borrower is credited 200."""
    facts = [
        _opened(1, FIRST, 10, "0x01"),
        _repaid(20, "0x02", 1, 900, REFERENCE),
        _repaid(21, "0x03", 1, 800, REFERENCE),
    ]
    entries = [
        EntryRecord(
            "LoanRepaid", "L1", 1, tx, 0, block, {"interestPaid": 0, "principalPaid": 100, "outstandingPrincipal": left}
        )
        for block, tx, left in ((20, "0x02", 900), (21, "0x03", 800))
    ]
    records = Records(
        loans=[_loan("L1", 1, FIRST, 10, "0x01", 800)],
        entries=entries,
        our_offer_digests=frozenset({FIRST}),
        payments=[PaymentRecord(REFERENCE, 1, 100, "L1", "recorded", "0x02", 20)],
    )
    result = reconcile_chain(SCOPE, facts, records)
    (again,) = result.items
    assert (again.category, again.tx_hash) == (Category.ONCHAIN_NOT_RECORDED, "0x03")
    assert "recorded again" in again.detail


def test_an_entry_booked_on_another_loan_is_a_mismatch() -> None:
    facts = [
        _opened(1, FIRST, 10, "0x01"),
        _opened(2, SECOND, 11, "0x0b"),
        _repaid(20, "0x02", 1, 900, "0x" + "00" * 32),
    ]
    records = Records(
        loans=[_loan("L1", 1, FIRST, 10, "0x01", 900), _loan("L2", 2, SECOND, 11, "0x0b", 1000)],
        # the ledger's repayment claims loan #1's log, booked on loan L2 (#2)
        entries=[
            EntryRecord(
                "LoanRepaid",
                "L2",
                2,
                "0x02",
                0,
                20,
                {"interestPaid": 0, "principalPaid": 100, "outstandingPrincipal": 900},
            )
        ],
        our_offer_digests=frozenset({FIRST, SECOND}),
    )
    (wrong,) = reconcile_chain(SCOPE, facts, records).items
    assert (wrong.category, wrong.subject) == (Category.AMOUNT_MISMATCH, "loan #1")
    assert "booked on loan #2" in wrong.detail


def test_a_run_ending_before_the_head_judges_no_present_state() -> None:
    """A full run to block 30 of a chain whose loan was repaid in block 40: the record says repaid, the facts up to
    30 say active, and the run reported a false outstanding-principal and status mismatch. Before the head, what a
    later block may change is not judged; the opening still is."""
    facts = [_opened(1, FIRST, 10, "0x01")]
    repaid = _loan("L1", 1, FIRST, 10, "0x01", 0)
    records = Records(loans=[replace(repaid, status="repaid")], our_offer_digests=frozenset({FIRST}))
    before_head = replace(SCOPE, to_block=30, at_head=False)
    result = reconcile_chain(before_head, facts, records)
    assert result.items == []
    assert result.counts["matched"] == 1
    at_head = reconcile_chain(replace(SCOPE, to_block=30), facts, records)
    assert {item.category for item in at_head.items} == {Category.AMOUNT_MISMATCH, Category.STATUS_MISMATCH}
    wrong_principal = Records(loans=[replace(repaid, principal=999)], our_offer_digests=frozenset({FIRST}))
    (item,) = reconcile_chain(before_head, facts, wrong_principal).items
    assert "principal: recorded 999" in item.detail


def test_a_partial_run_judges_the_status_its_range_leaves_a_loan_opened_before_it() -> None:
    """--since-last over blocks 50..100: loan #1, opened in block 10, is marked in default and written off in the
    range while the ledger still says active. Its status facts were neither matched nor reported (only counted as
    read), so an incremental audit never saw the default the ledger missed."""
    partial = replace(SCOPE, from_block=50, full=False)
    facts = [
        _fact("LoanDefaulted", 60, "0x05", loanId=1, outstandingPrincipal=1000, interestAccrued=7),
        _fact("LoanWrittenOff", 61, "0x06", loanId=1, principal=1000, interest=7),
    ]
    active = _loan("L1", 1, FIRST, 10, "0x01", 1000)
    (missed,) = reconcile_chain(partial, facts, Records(loans=[active])).items
    assert (missed.category, missed.subject) == (Category.STATUS_MISMATCH, "loan #1")
    assert "recorded active, on-chain written_off" in missed.detail
    written_off = Records(loans=[replace(active, status="written_off")])
    result = reconcile_chain(partial, facts, written_off)
    assert result.items == []
    assert result.counts["matched"] == 1


def test_a_loan_record_with_no_block_is_judged_by_a_full_run() -> None:
    """A loan record whose opening never confirmed (no block) and that the chain has no LoanOpened for was never
    reported, even by a full run; a partial run still leaves it alone."""
    never = replace(_loan("L9", 9, SECOND, 10, "0x09", 1000), block_number=None)
    records = Records(loans=[never], our_offer_digests=frozenset({SECOND}))
    (item,) = reconcile_chain(SCOPE, [], records).items
    assert (item.category, item.subject) == (Category.RECORDED_NOT_ONCHAIN, "L9")
    assert reconcile_chain(replace(SCOPE, from_block=50, full=False), [], records).items == []
