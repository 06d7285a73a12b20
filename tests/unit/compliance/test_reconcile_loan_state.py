"""What reconciliation expects a loan record to say, recomputed from the loan's logs alone: the collateral a
liquidation seized leaves with no ``CollateralRemoved`` of its own (the CollateralManager pays the liquidator in the
same call), so the recomputation takes ``LoanLiquidated``'s ``collateralSeized`` off as the ledger does; a record
that kept the whole collateral after a partial liquidation is a mismatch. A record whose ledger holds a fact after the
run's last block is not judged on its present status."""

from __future__ import annotations

from typing import Any

import pytest

from compliance._reconcile_loans import OpenedLoan, _compare, _expected, match_earlier_loans
from compliance._reconcile_values import Category, ChainResult, ChainScope, Fact, LoanRecord, Records

pytestmark = pytest.mark.unit

PRINCIPAL, COLLATERAL = 1_000_000_000, 10**18


def _fact(event: str, tx: str, log_index: int = 0, **args: Any) -> Fact:
    return Fact("ethereum-local", "CreditAggregator", "0x" + "11" * 20, event, args, 10, tx, log_index)


def _loan() -> OpenedLoan:
    opened = _fact("LoanOpened", "0x01", principal=PRINCIPAL, collateralAmount=COLLATERAL, offerDigest="0x" + "ab" * 32)
    partial = [
        _fact(
            "LoanLiquidated", "0x02", debtRepaid=400_000_000, collateralSeized=3 * 10**17, liquidator="0x" + "22" * 20
        ),
        _fact("LoanRepaid", "0x02", 1, interestPaid=0, principalPaid=400_000_000, outstandingPrincipal=600_000_000),
    ]
    return OpenedLoan(opened, partial)


def test_a_partial_liquidation_takes_the_seized_collateral_off() -> None:
    assert _expected(_loan()) == ("active", 600_000_000, COLLATERAL - 3 * 10**17)


def test_a_record_that_kept_the_seized_collateral_is_a_mismatch() -> None:
    loan = _loan()
    fields: dict[str, Any] = {
        "loan_id": "l1",
        "onchain_loan_id": 1,
        "offer_digest": "0x" + "ab" * 32,
        "status": "active",
        "principal": PRINCIPAL,
        "outstanding_principal": 600_000_000,
        "collateral_amount": COLLATERAL,
        "principal_paid": 400_000_000,
    }
    stale = LoanRecord(**{**_defaults(), **fields})
    problems = _compare(stale, loan)
    assert [category for category, _ in problems] == [Category.AMOUNT_MISMATCH]
    assert "collateral" in problems[0][1]
    right = LoanRecord(**{**_defaults(), **fields, "collateral_amount": COLLATERAL - 3 * 10**17})
    assert _compare(right, loan) == []


def _defaults() -> dict[str, Any]:
    """The record's other fields, as a loan record of ours has them."""
    return {"tx_hash": "0x01", "block_number": 10, "quote_id": "q1", "accepted": True, "interest_paid": 0}


def test_a_loan_recorded_past_the_run_is_not_judged_on_its_present_status() -> None:
    """A partial run's loan opened before its range, defaulted in it: a record that says repaid is a mismatch, unless
    its ledger holds a fact after the run's last block (the run read the chain before the indexer recorded it)."""
    scope = ChainScope("ethereum-local", 31337, 5, 20, "0x" + "99" * 20, "0x" + "33" * 20, full=False)
    defaulted = {1: [_fact("LoanDefaulted", "0x03", loanId=1, outstandingPrincipal=PRINCIPAL)]}
    fields: dict[str, Any] = {
        "loan_id": "l1",
        "onchain_loan_id": 1,
        "offer_digest": "0x" + "ab" * 32,
        "status": "repaid",
        "principal": PRINCIPAL,
        "outstanding_principal": 0,
        "collateral_amount": 0,
    }
    for last_fact_block, expected in ((20, [Category.STATUS_MISMATCH]), (21, [])):
        result = ChainResult(scope)
        record = LoanRecord(**{**_defaults(), **fields, "last_fact_block": last_fact_block})
        match_earlier_loans(result, scope, defaulted, Records(loans=[record]))
        assert [item.category for item in result.items] == expected
