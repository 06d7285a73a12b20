"""The rounding policy of docs/compliance.md worked out on its own in exact fractions, for tests to hold
``compliance.tila.schedule.amortize`` to: the level payment solved exactly, each period's interest rounded half up
to the cent, the last installment clearing the balance."""

from __future__ import annotations

import math
from datetime import date
from fractions import Fraction

from compliance.tila.schedule import DayCount, year_fraction

CENT = Fraction(1, 100)


def half_up(value: Fraction) -> Fraction:
    """``value`` (not negative) to the cent, half up."""
    return math.floor(value / CENT + Fraction(1, 2)) * CENT


def periods(start: date, due_dates: list[date], day_count: DayCount) -> list[Fraction]:
    """Each period's year fraction, from the start to the first due date and between due dates."""
    return [year_fraction(a, b, day_count) for a, b in zip([start, *due_dates], due_dates, strict=False)]


def exact_level_payment(principal: Fraction, rate_bps: int, fractions: list[Fraction]) -> Fraction:
    """The equal payment that retires ``principal`` exactly (no rounding), as a fraction."""
    rate = Fraction(rate_bps, 10_000)
    discount, annuity = Fraction(1), Fraction(0)
    for fraction in fractions:
        discount /= 1 + rate * fraction
        annuity += discount
    return principal / annuity


def last_installment(principal: Fraction, rate_bps: int, fractions: list[Fraction], regular: Fraction) -> Fraction:
    """The last installment when every one before it is ``regular``: the balance left plus its interest."""
    rate = Fraction(rate_bps, 10_000)
    balance = principal
    for fraction in fractions[:-1]:
        balance -= regular - half_up(balance * rate * fraction)
    return balance + half_up(balance * rate * fractions[-1])


def nearest_regulars(principal: Fraction, rate_bps: int, fractions: list[Fraction]) -> dict[Fraction, Fraction]:
    """The last installment left by each regular installment within a cent of the half-up rounded level payment (a
    cent below it, it, a cent above it)."""
    regular = half_up(exact_level_payment(principal, rate_bps, fractions))
    return {
        candidate: last_installment(principal, rate_bps, fractions, candidate)
        for candidate in (regular - CENT, regular, regular + CENT)
    }
