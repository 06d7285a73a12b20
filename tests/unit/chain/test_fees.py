"""EIP-1559 fee suggestion and the 12.5 % replacement bump."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.errors import FeeCapExceeded
from chain.fees import GWEI, FeePolicy, Fees, bumped, gas_allowed, replacement_fees, short_of_funds, suggest_fees
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


# anvil 1.7.1's answers to eth_estimateGas at 1 gwei base fee, 30M block gas limit: a contract that loops for ever,
# estimated from any account (with or without a fee), and from an account holding 0.001 ETH with a fee of 2 gwei
OUT_OF_GAS = "gas estimate failed on ethereum-local: Out of gas: gas required exceeds allowance: 30000000"
POOR = "gas estimate failed on ethereum-local: Out of gas: gas required exceeds allowance: 500000"


def test_an_allowance_exceeded_is_the_sender_s_funds_only_when_its_balance_bought_no_more_gas() -> None:
    rich, fee = Wei(10_000 * 10**18), Wei(2 * GWEI)
    assert gas_allowed(OUT_OF_GAS) == 30_000_000
    assert gas_allowed("gas required exceeds allowance (1000)") == 1_000, "geth's form"
    assert gas_allowed("gas required exceeds allowance or always failing transaction") is None
    assert not short_of_funds(OUT_OF_GAS, rich, 30_000_000, fee, Wei(0)), "the call needs more than a block holds"
    assert short_of_funds(POOR, Wei(10**15), 30_000_000, fee, Wei(0)), "10**15 wei buys 500,000 gas at 2 gwei"
    assert not short_of_funds(OUT_OF_GAS, Wei(10**15), 30_000_000, fee, Wei(0)), "the block's gas: not the balance's"
    assert not short_of_funds(OUT_OF_GAS, Wei(0), 30_000_000, fee, Wei(0)), "no balance sends a call past the block"
    assert short_of_funds(POOR, Wei(10**15 + 2 * GWEI), 30_000_000, fee, Wei(2 * GWEI)), "the value is not gas"
    assert not short_of_funds(POOR, Wei(10**15 + 2 * GWEI), 30_000_000, fee, Wei(0)), "it buys one gas more"
    old_geth = "gas required exceeds allowance or always failing transaction"
    assert not short_of_funds(old_geth, rich, 30_000_000, fee, Wei(0)), "no gas named: the block gas limit"
    assert short_of_funds(old_geth, Wei(10**15), 30_000_000, fee, Wei(0))
    assert not short_of_funds("insufficient funds for gas * price + value", Wei(0), 30_000_000, fee, Wei(0))
