"""The CollateralManager's liquidation rules in Python, to the wei: health factor, close factor, the repay a
liquidation may take, the collateral it seizes, the dust rule and the bad debt it leaves.

Pure integer arithmetic mirroring ``contracts/CollateralManager.sol`` (``_assess``, ``liquidate``) and
``contracts/libraries/CollateralMath.sol``: values are USD with 8 decimals, the health factor has 18, every rounding
goes the contract's way (collateral valued down, debt up; a liquidator gets collateral rounded down). The keeper
sizes its liquidations with it and the chain checks them again (an ``eth_call`` simulation before sending).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

BPS = 10_000
WAD = 10**18
NO_DEBT = 2**256 - 1  # the contract's health factor of a position with nothing owed
CLOSE_FACTOR_HF_THRESHOLD = 95 * 10**16  # 0.95: below it a position may be liquidated in full (Aave v3.3)
DEFAULT_CLOSE_FACTOR_BPS = 5_000  # above it, half the debt per liquidation


def _mul_div_down(a: int, b: int, c: int) -> int:
    return a * b // c


def _mul_div_up(a: int, b: int, c: int) -> int:
    return -(-(a * b) // c)


def value_down(amount: int, price: int, unit: int) -> int:
    """USD value (8 decimals) of ``amount`` base units of a token whose ``unit`` is 10**decimals, rounded down."""
    return _mul_div_down(amount, price, unit)


def value_up(amount: int, price: int, unit: int) -> int:
    return _mul_div_up(amount, price, unit)


def health_factor_down(collateral_value: int, threshold_bps: int, debt_value: int) -> int:
    """Collateral value × liquidation threshold / debt value, 18 decimals, rounded down; ``NO_DEBT`` without debt."""
    if debt_value == 0:
        return NO_DEBT
    return _mul_div_down(collateral_value * threshold_bps, WAD, debt_value * BPS)


def collateral_for_debt_down(
    debt: int, debt_price: int, debt_unit: int, collateral_price: int, collateral_unit: int, bonus_bps: int
) -> int:
    base = _mul_div_down(debt * debt_price, collateral_unit, collateral_price * debt_unit)
    return _mul_div_down(base, BPS + bonus_bps, BPS)


def debt_for_collateral_up(
    collateral: int, collateral_price: int, collateral_unit: int, debt_price: int, debt_unit: int, bonus_bps: int
) -> int:
    base = _mul_div_up(collateral * collateral_price, debt_unit, debt_price * collateral_unit)
    return _mul_div_up(base, BPS, BPS + bonus_bps)


def debt_for_collateral_down(
    collateral: int, collateral_price: int, collateral_unit: int, debt_price: int, debt_unit: int, bonus_bps: int
) -> int:
    """What a liquidation of all ``collateral`` recovers at most (the contract's ``recoverableValue``)."""
    base = _mul_div_down(collateral * collateral_price, debt_unit, debt_price * collateral_unit)
    return _mul_div_down(base, BPS, BPS + bonus_bps)


@dataclass(frozen=True, slots=True)
class Position:
    """One loan as the CollateralManager prices it. Prices are USD with 8 decimals; units are 10**decimals;
    ``debt`` is principal plus interest accrued to the block read (frozen at a default)."""

    debt: int
    defaulted: bool
    debt_price: int
    debt_unit: int
    collateral: int
    collateral_price: int
    collateral_unit: int
    threshold_bps: int
    bonus_bps: int


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The CollateralManager's ``fullCloseValue`` and ``minLeftoverValue`` (USD, 8 decimals)."""

    full_close_value: int
    min_leftover_value: int


@dataclass(frozen=True, slots=True)
class Assessment:
    collateral_value: int
    debt_value: int
    health_factor: int
    max_debt: int  # the most one liquidation may repay now (the close factor applied)


def assess(position: Position, thresholds: Thresholds) -> Assessment:
    """``_assess``: values, health factor, and the close factor's cap on one liquidation's repay."""
    p = position
    collateral_value = value_down(p.collateral, p.collateral_price, p.collateral_unit)
    debt_value = value_up(p.debt, p.debt_price, p.debt_unit)
    factor = health_factor_down(collateral_value, p.threshold_bps, debt_value)
    max_debt = p.debt
    if (
        not p.defaulted
        and factor > CLOSE_FACTOR_HF_THRESHOLD
        and collateral_value >= thresholds.full_close_value
        and debt_value >= thresholds.full_close_value
    ):
        max_debt = p.debt * DEFAULT_CLOSE_FACTOR_BPS // BPS
    return Assessment(collateral_value, debt_value, factor, max_debt)


def liquidatable(position: Position, assessment: Assessment) -> bool:
    """In default, or a health factor below 1."""
    return position.defaulted or assessment.health_factor < WAD


class Refusal(StrEnum):
    HEALTHY = "healthy"
    NOTHING_OWED = "nothing owed"
    DUST = "would leave dust"


@dataclass(frozen=True, slots=True)
class Liquidation:
    """What ``liquidate(loanId, repay)`` does: the debt repaid, the collateral seized, and the bad debt written off
    when the collateral runs out first."""

    debt_repaid: int
    collateral_seized: int
    bad_debt: int


class LiquidationRefused(Exception):
    def __init__(self, refusal: Refusal, detail: str = "") -> None:
        super().__init__(f"{refusal.value}{': ' + detail if detail else ''}")
        self.refusal = refusal


def liquidation(position: Position, thresholds: Thresholds, repay: int) -> Liquidation:
    """The outcome of ``liquidate(loanId, repay)`` on ``position`` (``LiquidationRefused`` where the contract
    reverts with ``HealthyPosition``, ``ZeroAmount`` or ``MustNotLeaveDust``)."""
    p = position
    a = assess(p, thresholds)
    if p.debt == 0 or repay == 0:
        raise LiquidationRefused(Refusal.NOTHING_OWED)
    if not liquidatable(p, a):
        raise LiquidationRefused(Refusal.HEALTHY, f"health factor {a.health_factor}")
    repaid = min(repay, a.max_debt)
    seized = collateral_for_debt_down(
        repaid, p.debt_price, p.debt_unit, p.collateral_price, p.collateral_unit, p.bonus_bps
    )
    if seized >= p.collateral:
        seized = p.collateral
        needed = debt_for_collateral_up(
            p.collateral, p.collateral_price, p.collateral_unit, p.debt_price, p.debt_unit, p.bonus_bps
        )
        repaid = min(repaid, needed)
    if repaid < p.debt and seized < p.collateral:
        debt_left = value_down(p.debt - repaid, p.debt_price, p.debt_unit)
        collateral_left = value_down(p.collateral - seized, p.collateral_price, p.collateral_unit)
        if debt_left < thresholds.min_leftover_value or collateral_left < thresholds.min_leftover_value:
            raise LiquidationRefused(
                Refusal.DUST, f"debt left worth {debt_left}, collateral left worth {collateral_left} (USD, 8 dp)"
            )
    bad_debt = p.debt - repaid if seized == p.collateral and repaid < p.debt else 0
    return Liquidation(repaid, seized, bad_debt)


def repay_to_send(position: Position, thresholds: Thresholds, margin_bps: int = 10) -> int:
    """The repay amount a keeper sends: the close factor's maximum now plus ``margin_bps`` for the interest that
    accrues before the transaction is mined (the contract caps the repay at its maximum then, so a full close stays
    a full close and never leaves a few base units of dust)."""
    cap = assess(position, thresholds).max_debt
    return cap + cap * margin_bps // BPS + 1


def largest_repay_leaving_no_dust(position: Position, thresholds: Thresholds) -> int | None:
    """The largest repay the contract takes when the close factor's maximum would leave dust (``MustNotLeaveDust``):
    a smaller partial liquidation leaves more debt and more collateral, each worth at least ``minLeftoverValue``.
    None when no repay does (a debt or collateral already under it). Found by bisection on ``liquidation``, whose
    dust rule only tightens as the repay grows; sent as it is, with no margin: interest accrued before it is mined
    only leaves more debt."""
    low, high = 0, assess(position, thresholds).max_debt  # low passes (0 taken as "none"), high is refused

    def passes(repay: int) -> bool:
        try:
            liquidation(position, thresholds, repay)
        except LiquidationRefused as err:
            if err.refusal is Refusal.DUST:
                return False
            raise
        return True

    while high - low > 1:
        middle = (low + high) // 2
        if passes(middle):
            low = middle
        else:
            high = middle
    return low or None


def expected_loss(position: Position) -> int:
    """The impairment the contract books (``impair``): the debt a liquidation of all the collateral cannot recover."""
    p = position
    recoverable = debt_for_collateral_down(
        p.collateral, p.collateral_price, p.collateral_unit, p.debt_price, p.debt_unit, p.bonus_bps
    )
    return max(p.debt - recoverable, 0)
