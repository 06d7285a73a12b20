"""The CollateralManager's liquidation rules in Python: health factor, close factor, sizing, dust and bad debt, on
figures worked out by hand from the contract's formulas (the keeper's integration test checks them against the
chain to the wei)."""

from __future__ import annotations

import dataclasses

import pytest

from aggregator.servicing.health import (
    NO_DEBT,
    WAD,
    LiquidationRefused,
    Position,
    Refusal,
    Thresholds,
    assess,
    expected_loss,
    largest_repay_leaving_no_dust,
    liquidation,
    repay_to_send,
)

pytestmark = pytest.mark.unit

USDC, WETH = 10**6, 10**18
THRESHOLDS = Thresholds(full_close_value=2_000 * 10**8, min_leftover_value=1_000 * 10**8)


def position(debt_usdc: int, weth: int, weth_usd: int, *, defaulted: bool = False) -> Position:
    return Position(
        debt=debt_usdc * USDC,
        defaulted=defaulted,
        debt_price=10**8,
        debt_unit=USDC,
        collateral=weth * WETH,
        collateral_price=weth_usd * 10**8,
        collateral_unit=WETH,
        threshold_bps=8_250,
        bonus_bps=500,
    )


def test_health_factor_is_collateral_value_times_threshold_over_debt() -> None:
    a = assess(position(5_000, 3, 3_000), THRESHOLDS)
    assert a.collateral_value == 9_000 * 10**8
    assert a.debt_value == 5_000 * 10**8
    assert a.health_factor == 9_000 * 8_250 * WAD // (5_000 * 10_000)  # 1.485
    assert assess(dataclasses.replace(position(5_000, 3, 3_000), debt=0), THRESHOLDS).health_factor == NO_DEBT


def test_close_factor_is_half_between_095_and_1_and_full_below_or_for_small_or_defaulted_positions() -> None:
    half = position(5_000, 3, 2_000)  # health 0.99
    assert WAD * 95 // 100 < assess(half, THRESHOLDS).health_factor < WAD
    assert assess(half, THRESHOLDS).max_debt == 2_500 * USDC
    below = position(5_000, 3, 1_900)  # health 0.9405
    assert assess(below, THRESHOLDS).max_debt == 5_000 * USDC
    small = position(1_500, 1, 1_800)  # debt under the full-close value
    assert assess(small, THRESHOLDS).max_debt == 1_500 * USDC
    defaulted = position(5_000, 3, 3_000, defaulted=True)
    assert assess(defaulted, THRESHOLDS).max_debt == 5_000 * USDC


def test_a_half_liquidation_repays_the_cap_and_seizes_debt_plus_bonus_in_collateral() -> None:
    outcome = liquidation(position(5_000, 3, 2_000), THRESHOLDS, repay=10_000 * USDC)
    assert outcome.debt_repaid == 2_500 * USDC
    assert outcome.collateral_seized == 2_500 * 10**8 * 105 // 100 * WETH // (2_000 * 10**8)  # 1.3125 WETH
    assert outcome.bad_debt == 0


def test_collateral_running_out_caps_the_repay_and_leaves_bad_debt() -> None:
    outcome = liquidation(position(5_000, 3, 1_000), THRESHOLDS, repay=5_000 * USDC)
    assert outcome.collateral_seized == 3 * WETH
    needed = -(-3_000 * USDC * 10_000 // 10_500)  # 3,000 USD of collateral buys 3,000/1.05 of debt, rounded up
    assert outcome.debt_repaid == needed
    assert outcome.bad_debt == 5_000 * USDC - needed


def test_healthy_and_dust_leaving_liquidations_are_refused_as_the_contract_reverts() -> None:
    with pytest.raises(LiquidationRefused) as healthy:
        liquidation(position(5_000, 3, 3_000), THRESHOLDS, repay=USDC)
    assert healthy.value.refusal is Refusal.HEALTHY
    with pytest.raises(LiquidationRefused) as dust:  # repaying all but 10 USDC leaves debt worth under 1,000
        liquidation(position(5_000, 3, 1_900), THRESHOLDS, repay=4_990 * USDC)
    assert dust.value.refusal is Refusal.DUST


def test_the_keeper_sends_a_margin_over_the_cap_and_a_full_close_stays_full() -> None:
    below = position(5_000, 3, 1_900)
    sent = repay_to_send(below, THRESHOLDS)
    assert sent > 5_000 * USDC
    accrued = dataclasses.replace(below, debt=below.debt + 37)  # interest accrued before it was mined
    assert liquidation(accrued, THRESHOLDS, sent).debt_repaid == accrued.debt


def test_expected_loss_is_the_debt_a_full_liquidation_cannot_recover() -> None:
    assert expected_loss(position(5_000, 3, 3_000)) == 0
    underwater = position(5_000, 3, 1_000)
    assert expected_loss(underwater) == 5_000 * USDC - 3_000 * USDC * 10_000 // 10_500


def test_when_the_most_a_liquidation_may_repay_leaves_dust_the_keeper_repays_less() -> None:
    """WETH at a 95% liquidation threshold and a 5% bonus (governance allows it), 2,010 USDC against 1 WETH at
    2,040 (health 0.964, the close factor's half applies): repaying the half (1,005) leaves collateral worth 984.75,
    under the 1,000 minimum, and the contract refuses (MustNotLeaveDust, as on anvil); the keeper skipped the loan.
    The most it takes is smaller, and a repay of it passes while one base unit more is refused."""
    risky = dataclasses.replace(position(2_010, 1, 2_040), threshold_bps=9_500)
    with pytest.raises(LiquidationRefused) as dust:
        liquidation(risky, THRESHOLDS, repay_to_send(risky, THRESHOLDS))
    assert dust.value.refusal is Refusal.DUST
    repay = largest_repay_leaving_no_dust(risky, THRESHOLDS)
    assert repay is not None
    assert 980 * USDC <= repay < assess(risky, THRESHOLDS).max_debt  # 980 USDC passed on anvil
    outcome = liquidation(risky, THRESHOLDS, repay)
    assert outcome.debt_repaid == repay
    with pytest.raises(LiquidationRefused):
        liquidation(risky, THRESHOLDS, repay + 1)
    # a debt worth exactly the minimum leftover, under the close factor's half: any repay leaves dust
    exact = dataclasses.replace(position(1_000, 1, 1_040), threshold_bps=9_500)
    assert largest_repay_leaving_no_dust(exact, Thresholds(500 * 10**8, 1_000 * 10**8)) is None
