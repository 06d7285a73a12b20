"""A loan's amounts are rendered in one unit: a loan whose token on its chain is not listed, while its symbol is, shows
its principal and its repayments alike in the asset's units (the detail looked the asset up by address only, and
showed repayments in base units beside a principal in USDC)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from eth_utils.address import to_checksum_address

from aggregator.assets import Asset, AssetRegistry
from aggregator.loans import ChainRef, LoanDetail, LoanEntries, LoanRecord, Repayment
from api.render import loan_detail_out

pytestmark = pytest.mark.unit

USDC = Asset("USDC", 6, Decimal(1), {"ethereum-local": to_checksum_address("0x" + "c0" * 20)})
UNLISTED_TOKEN = "0x" + "c1" * 20


def test_repayments_are_shown_in_the_units_of_the_principal() -> None:
    opened = datetime(2026, 11, 26, tzinfo=UTC)
    loan = LoanRecord("l1", "ethereum-local", 31337, "0x" + "a0" * 20, "active", "USDC", 1_500_000_000, "0x", opened)
    loan = replace(loan, asset_address=UNLISTED_TOKEN, onchain_loan_id=1)
    where = ChainRef(7, "0x" + "b7" * 32, "0x" + "77" * 32, 0)
    repaid = Repayment("0x" + "11" * 20, 2_500_000, 1_500_000_000, 0, "0x" + "00" * 32, where)
    detail = LoanDetail(loan, LoanEntries(repayments=[repaid]), None)

    out = loan_detail_out(detail, AssetRegistry([USDC]))

    assert out.principal == "1500.00"
    assert out.repayments is not None
    [repayment] = out.repayments
    assert (repayment.principal_paid, repayment.interest_paid) == ("1500.00", "2.50")
