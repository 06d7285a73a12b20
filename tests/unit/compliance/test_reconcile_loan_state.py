"""What reconciliation expects a loan record to say, recomputed from the loan's logs alone: the collateral a
liquidation seized leaves with no ``CollateralRemoved`` of its own (the CollateralManager pays the liquidator in the
same call), so the recomputation takes ``LoanLiquidated``'s ``collateralSeized`` off as the ledger does; a record
that kept the whole collateral after a partial liquidation is a mismatch."""

from __future__ import annotations

from typing import Any

import pytest

from compliance._reconcile_loans import OpenedLoan, _compare, _expected
from compliance._reconcile_values import Category, Fact, LoanRecord

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
    }
    stale = LoanRecord(**{**_defaults(), **fields})
    problems = _compare(stale, loan)
    assert [category for category, _ in problems] == [Category.AMOUNT_MISMATCH]
    assert "collateral" in problems[0][1]
    right = LoanRecord(**{**_defaults(), **fields, "collateral_amount": COLLATERAL - 3 * 10**17})
    assert _compare(right, loan) == []


def _defaults() -> dict[str, Any]:
    """The record's other fields, as a loan record of ours has them."""
    return {"tx_hash": "0x01", "block_number": 10, "quote_id": "q1", "accepted": True}
