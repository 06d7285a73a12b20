"""The lowest health factor of a borrower's open loans, as the on-chain features record it: in basis points,
rounded down, loans without debt left out — and bounded. A loan with one base unit of debt against much collateral
has a factor past 2**53 basis points; unbounded, the decision's canonical JSON (RFC 8785) refused it and every credit
request of its borrower failed (500)."""

from __future__ import annotations

import pytest
import rfc8785

from risk.onchain_source import HEALTH_FACTOR_ONE, MAX_HEALTH_FACTOR_BPS, NO_DEBT, lowest_health_bps

pytestmark = pytest.mark.unit


def test_the_lowest_factor_in_debt_in_basis_points() -> None:
    assert lowest_health_bps([NO_DEBT]) is None
    assert lowest_health_bps([]) is None
    assert lowest_health_bps([NO_DEBT, 3 * HEALTH_FACTOR_ONE // 2, HEALTH_FACTOR_ONE + 1]) == 10_000


def test_a_factor_past_canonical_jsons_integers_is_recorded_at_the_bound() -> None:
    # 400 WETH at 3,000 USD against one base unit of USDC: a factor of about 1e12 (18 decimals: 1e30)
    huge = 1_000_000_000_000 * HEALTH_FACTOR_ONE
    assert lowest_health_bps([huge]) == MAX_HEALTH_FACTOR_BPS
    rfc8785.dumps({"min_health_factor_bps": lowest_health_bps([huge])})  # the decision's hash takes it
    with pytest.raises(rfc8785.IntegerDomainError):
        rfc8785.dumps({"min_health_factor_bps": huge * 10_000 // HEALTH_FACTOR_ONE})
