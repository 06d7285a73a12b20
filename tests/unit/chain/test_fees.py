"""EIP-1559 fee suggestion and the 12.5 % replacement bump."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.errors import FeeCapExceeded
from chain.fees import GWEI, FeePolicy, Fees, bumped, replacement_fees, suggest_fees
from chain.types import Wei

pytestmark = pytest.mark.unit

POLICY = FeePolicy(max_fee_per_gas=Wei(500 * GWEI))
wei = st.integers(min_value=0, max_value=200 * GWEI).map(Wei)


def test_suggestion_is_twice_the_base_fee_plus_the_median_tip() -> None:
    fees = suggest_fees(Wei(10 * GWEI), [Wei(2 * GWEI), Wei(3 * GWEI), Wei(4 * GWEI)], POLICY)
    assert fees == Fees(Wei(23 * GWEI), Wei(3 * GWEI))


def test_tip_never_below_the_policy_floor() -> None:
    assert suggest_fees(Wei(GWEI), [Wei(0)], POLICY).max_priority_fee_per_gas == GWEI


def test_a_market_above_the_cap_is_refused() -> None:
    with pytest.raises(FeeCapExceeded):
        suggest_fees(Wei(600 * GWEI), [], POLICY)


@given(base=wei, tips=st.lists(wei, max_size=10))
def test_suggestion_stays_within_policy(base: Wei, tips: list[Wei]) -> None:
    fees = suggest_fees(base, tips, POLICY)
    assert fees.max_priority_fee_per_gas <= fees.max_fee_per_gas <= POLICY.max_fee_per_gas
    assert fees.max_fee_per_gas >= min(base + POLICY.min_priority_fee, POLICY.max_fee_per_gas)


@given(old_max=st.integers(1, 100 * GWEI), old_tip=st.integers(1, 10 * GWEI), market_base=wei)
def test_replacement_bumps_both_fields_by_at_least_an_eighth(old_max: int, old_tip: int, market_base: Wei) -> None:
    previous = Fees(Wei(max(old_max, old_tip)), Wei(old_tip))
    market = suggest_fees(market_base, [], POLICY)
    new = replacement_fees(previous, market, POLICY)
    assert new.max_fee_per_gas * 8 >= previous.max_fee_per_gas * 9
    assert new.max_priority_fee_per_gas * 8 >= previous.max_priority_fee_per_gas * 9
    assert new.max_fee_per_gas >= market.max_fee_per_gas
    assert new.max_priority_fee_per_gas <= new.max_fee_per_gas <= POLICY.max_fee_per_gas


def test_bump_rounds_up() -> None:
    assert bumped(9) == 11  # 10.125 → 11
    assert bumped(8) == 9


def test_no_room_under_the_cap_for_a_bump_is_refused() -> None:
    with pytest.raises(FeeCapExceeded):
        replacement_fees(Fees(Wei(480 * GWEI), Wei(GWEI)), Fees(Wei(3 * GWEI), Wei(GWEI)), POLICY)
