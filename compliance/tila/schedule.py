"""Equal-installment amortization to the cent under a stated day count and rounding policy.

Rounding policy (also in docs/compliance.md):
1. The regular installment is the exact level payment that retires the balance under the day count, rounded half
   up to the quantum (the cent by default).
2. Each period's interest is the outstanding balance times the annual rate times the period's year fraction,
   rounded half up to the quantum; the principal part is the installment less that interest.
3. The last installment is whatever clears the balance (its interest plus the whole remaining principal), so it
   absorbs every rounding difference and the balance ends at exactly zero. It may be smaller than the regular one.
4. Only when that leaves the last installment at or below zero — half up overpaid — is the regular installment one
   quantum lower, once.
5. The last installment (less any balloon) must then be more than zero and at most twice the regular one; otherwise
   the terms are refused. Each quantum on the regular installment moves the last one by that quantum compounded
   over the rest of the schedule — one cent on 360 monthly installments at 32.13% moves it by about $5,120 — so
   where no regular installment on the quantum lands the last one near it, the nearest schedule hides a balloon
   payment (more than twice a regular payment, 12 CFR 1026.18(s)(5)(i)) in terms offered as equal installments.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext
from enum import StrEnum
from fractions import Fraction

from compliance.errors import ComplianceInputError

CENT = Decimal("0.01")


class DayCount(StrEnum):
    THIRTY_360 = "30/360"  # US (NASD) 30/360: day 31 becomes 30; a 31st end day becomes 30 if the start day is 30/31
    ACTUAL_365 = "actual/365"  # actual days over a fixed 365
    ACTUAL_ACTUAL = "actual/actual"  # ISDA: the days in each calendar year over that year's length


def year_fraction(start: date, end: date, day_count: DayCount) -> Fraction:
    """The fraction of a year from ``start`` to ``end`` under ``day_count``, exactly."""
    if end < start:
        raise ComplianceInputError(f"{end} is before {start}")
    if day_count is DayCount.THIRTY_360:
        d1, d2 = min(start.day, 30), end.day
        if d2 == 31 and d1 == 30:
            d2 = 30
        days = 360 * (end.year - start.year) + 30 * (end.month - start.month) + (d2 - d1)
        return Fraction(days, 360)
    if day_count is DayCount.ACTUAL_365:
        return Fraction((end - start).days, 365)
    total = Fraction(0)
    cursor = start
    while cursor < end:
        year_end = date(cursor.year + 1, 1, 1)
        stop = min(end, year_end)
        length = 366 if calendar.isleap(cursor.year) else 365
        total += Fraction((stop - cursor).days, length)
        cursor = stop
    return total


@dataclass(frozen=True)
class Installment:
    number: int
    due: date
    payment: Decimal
    interest: Decimal
    principal: Decimal
    balance_after: Decimal


def _half_up(exact: Fraction, quantum: Decimal) -> Decimal:
    """``exact`` (not negative) rounded half up to ``quantum``, exactly: a period's interest computed in decimals
    first lost its half (1,597.50 at 9.4% for a third of a year is 50.055, which 28 digits made 50.05499…)."""
    return Decimal(math.floor(exact / Fraction(quantum) + Fraction(1, 2))) * quantum


def _to_decimal(value: Fraction) -> Decimal:
    return Decimal(value.numerator) / Decimal(value.denominator)


def level_payment(
    principal: Decimal, rate_bps: int, fractions: list[Fraction], balloon: Decimal = Decimal(0)
) -> Decimal:
    """The exact (unrounded) equal payment retiring ``principal`` over periods with these year fractions, with
    ``balloon`` of it left to be repaid on top of the last payment."""
    with localcontext() as ctx:
        ctx.prec = 50
        rate = Decimal(rate_bps) / Decimal(10_000)
        discount = Decimal(1)
        annuity = Decimal(0)
        for fraction in fractions:
            discount /= 1 + rate * _to_decimal(fraction)
            annuity += discount
        return (principal - balloon * discount) / annuity


def amortize(
    principal: Decimal,
    rate_bps: int,
    start: date,
    due_dates: list[date],
    day_count: DayCount,
    quantum: Decimal = CENT,
    *,
    balloon: Decimal = Decimal(0),
) -> list[Installment]:
    """The equal-installment schedule for ``principal`` at ``rate_bps`` a year with payments on ``due_dates``; with a
    ``balloon``, that much principal is left for the last payment, which is the regular one plus the balloon (and,
    as always, the rounding differences).

    Raises:
        ComplianceInputError: no due dates, dates out of order, a principal not on the quantum, or terms no equal
            installment on the quantum repays without a last one above twice the regular one (rounding policy 5).
    """
    if not due_dates:
        raise ComplianceInputError("an installment schedule needs at least one due date")
    if principal <= 0 or principal != principal.quantize(quantum):
        raise ComplianceInputError(f"principal {principal} must be positive and a multiple of {quantum}")
    if rate_bps < 0:
        raise ComplianceInputError("the rate is not negative")
    previous = start
    fractions: list[Fraction] = []
    for due in due_dates:
        if due <= previous:
            raise ComplianceInputError(f"due dates must increase after the start: {due} follows {previous}")
        fractions.append(year_fraction(previous, due, day_count))
        previous = due
    if balloon < 0 or balloon >= principal or balloon != balloon.quantize(quantum):
        raise ComplianceInputError(f"balloon {balloon} must be at least 0, below the principal and on {quantum}")
    exact_payment = level_payment(principal, rate_bps, fractions, balloon)
    regular = exact_payment.quantize(quantum, ROUND_HALF_UP)
    schedule = _run(principal, rate_bps, due_dates, fractions, regular, quantum)
    if len(due_dates) == 1:
        return schedule  # one installment: it is the last one, the whole balance and its interest
    if schedule[-1].payment <= 0:
        # Half up overpaid: the regular installments retire more than the principal. One quantum lower, once.
        regular -= quantum
        if regular < quantum:
            raise ComplianceInputError(f"{principal} is too small to repay in {len(due_dates)} installments")
        schedule = _run(principal, rate_bps, due_dates, fractions, regular, quantum)
    rest = (schedule[-1].payment - balloon).quantize(quantum)
    if not 0 < rest <= 2 * regular:
        beyond = f" beyond the balloon of {balloon.quantize(quantum)}" if balloon else ""
        raise ComplianceInputError(
            f"{principal.quantize(quantum)} at {Decimal(rate_bps) / 100}% cannot be repaid in {len(due_dates)} equal "
            f"installments on the {quantum}: the nearest regular installment, {regular}, leaves {rest}{beyond} for the "
            "last one, which must be above zero and at most twice the regular one (a balloon payment, 12 CFR "
            "1026.18(s)(5)(i)); a quantum on each installment compounds past that over so many installments"
        )
    return schedule


def _run(
    principal: Decimal,
    rate_bps: int,
    due_dates: list[date],
    fractions: list[Fraction],
    payment: Decimal,
    quantum: Decimal,
) -> list[Installment]:
    schedule: list[Installment] = []
    balance = principal
    for number, (due, fraction) in enumerate(zip(due_dates, fractions, strict=True), start=1):
        interest = _half_up(Fraction(balance) * rate_bps * fraction / 10_000, quantum)
        this_payment = balance + interest if number == len(due_dates) else payment  # the last one clears it
        principal_part = this_payment - interest
        balance -= principal_part
        schedule.append(Installment(number, due, this_payment, interest, principal_part, balance))
    return schedule
