"""A ``LoanOpened`` against its loan record, pure: the record found by its offer digest (the loan's identity) must
name the same on-chain loan id as the event; a record found by the event's loan id with another offer digest is an
offer-digest mismatch (it was filed as an amount mismatch)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from compliance.reconcile import Category, ChainScope, Fact, LoanRecord, Records, reconcile_chain

pytestmark = pytest.mark.unit

AGGREGATOR, TIMELOCK, DEPLOYER = "0x" + "11" * 20, "0x" + "33" * 20, "0x" + "99" * 20
DIGEST, OTHER = "0x" + "ab" * 32, "0x" + "cd" * 32
SCOPE = ChainScope("ethereum-local", 31337, 1, 100, DEPLOYER, TIMELOCK)


def _opened(number: int, digest: str, **args: Any) -> Fact:
    fields = {"loanId": number, "principal": 1000, "collateralAmount": 10, "offerDigest": bytes.fromhex(digest[2:])}
    return Fact("ethereum-local", "CreditAggregator", AGGREGATOR, "LoanOpened", fields | args, 10, "0x01", 0)


def _record(number: int | None, digest: str = DIGEST) -> LoanRecord:
    return LoanRecord(
        loan_id="l1",
        onchain_loan_id=number,
        offer_digest=digest,
        principal=1000,
        status="active",
        outstanding_principal=1000,
        collateral_amount=10,
        tx_hash="0x01",
        block_number=10,
        quote_id="q1",
        accepted=True,
    )


def _run(facts: list[Fact], *loans: LoanRecord) -> list[tuple[Category, str, str]]:
    result = reconcile_chain(SCOPE, facts, Records(loans=loans, our_offer_digests=frozenset({DIGEST, OTHER})))
    return [(i.category, i.subject, i.detail) for i in result.items]


def test_the_same_loan_under_its_own_id_is_matched() -> None:
    assert _run([_opened(7, DIGEST)], _record(7)) == []
    assert _run([_opened(7, DIGEST)], _record(None)) == []  # not yet numbered by the ledger: nothing to compare


def test_a_record_found_by_its_offer_digest_under_another_loan_id_is_a_loan_id_mismatch() -> None:
    found = _run([_opened(7, DIGEST)], _record(5))
    assert found == [
        (Category.LOAN_ID_MISMATCH, "loan #7", f"loan id: recorded #5, the chain says #7 for offer {DIGEST}")
    ]


def test_the_offer_digest_finds_the_record_before_a_record_numbered_like_the_event() -> None:
    """Loan #7 is our offer DIGEST, recorded as #5; another record claims #7 with another offer: the loan is the
    record with its offer, renumbered, not the record with its number."""
    renumbered, squatter = _record(5), replace(_record(7, OTHER), loan_id="l2", block_number=None)
    found = _run([_opened(7, DIGEST)], renumbered, squatter)
    assert [(category, subject) for category, subject, _ in found] == [
        (Category.LOAN_ID_MISMATCH, "loan #7"),
        (Category.RECORDED_NOT_ONCHAIN, "l2"),  # its offer was never opened
    ]


def test_a_record_under_the_events_loan_id_with_another_offer_is_an_offer_digest_mismatch() -> None:
    found = _run([_opened(7, OTHER)], _record(7))
    assert found == [
        (Category.OFFER_DIGEST_MISMATCH, "loan #7", f"offer digest: recorded {DIGEST}, the chain says {OTHER}")
    ]
    assert Category.AMOUNT_MISMATCH not in {category for category, _, _ in found}
