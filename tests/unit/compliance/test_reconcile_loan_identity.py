"""A ``LoanOpened`` against its loan record, pure: the record found by its offer digest (the loan's identity) must
name the same on-chain loan id as the event; a record found by the event's loan id with another offer digest is an
offer-digest mismatch (it was filed as an amount mismatch); the event's borrower, rate and term are compared with the
loan record's and the accepted quote's offer (they were not compared at all)."""

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
        interest_paid=None if number is None else 0,  # the ledger's opening sets them with the loan's number
        principal_paid=None if number is None else 0,
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


BORROWER, SOMEONE = "0x" + "B0" * 20, "0x" + "5e" * 20
TERMS = {"borrower": BORROWER, "rateBps": 850, "term": 30 * 86_400}


def _terms(**changed: Any) -> LoanRecord:
    """The record with the ledger's terms and the accepted quote's offer as they were signed, then ``changed``."""
    signed = replace(_record(7), borrower=BORROWER.lower(), rate_bps=850, term_seconds=30 * 86_400, offer=TERMS)
    return replace(signed, **changed)


def test_borrower_rate_and_term_as_recorded_and_offered_are_matched() -> None:
    assert _run([_opened(7, DIGEST, **TERMS)], _terms()) == []
    assert _run([_opened(7, DIGEST, **TERMS)], _terms(offer={"rateBps": "850", "term": str(30 * 86_400)})) == []


def test_a_borrower_rate_or_term_other_than_the_events_is_reported_by_field() -> None:
    event = _opened(7, DIGEST, **(TERMS | {"borrower": SOMEONE, "rateBps": 1200, "term": 60 * 86_400}))
    found = _run([event], _terms(rate_bps=1200, offer=TERMS | {"term": 60 * 86_400}))
    assert sorted((category, detail) for category, _, detail in found) == sorted(
        [
            (Category.BORROWER_MISMATCH, f"borrower: recorded {BORROWER.lower()}, on-chain {SOMEONE}"),
            (Category.BORROWER_MISMATCH, f"borrower: our accepted offer (quote q1) has {BORROWER}, on-chain {SOMEONE}"),
            (Category.RATE_MISMATCH, "rate: our accepted offer (quote q1) has 850 bps, on-chain 1200 bps"),
            (Category.TERM_MISMATCH, "term: recorded 2592000 s, on-chain 5184000 s"),
        ]
    )
