"""The Regulation Z Appendix J actuarial method (12 CFR 1026, Appendix J (b)).

The general equation (b)(8) balances the advances against the payments, each discounted to the start of the
term at the unit-period rate ``i``. A flow ``t`` full unit-periods plus a fraction ``f`` of a unit-period away is
discounted by ``(1 + f*i) * (1 + i)**t``: the fraction earns simple interest, whole unit-periods compound ((b)(6)).
The APR is ``i`` times the unit-periods in a year ((b)(1)).

Dates are turned into ``(t, f)`` by the rules of (b)(5): months are all equal and the days left over are divided by
30 (monthly and multi-month unit-periods), days by the unit-period's length in days (days, weeks), and a year
unit-period counts whole years back from the later date, the rest in months over 12 or else in days over 365.

Rates are computed with ``Decimal`` at 40 significant digits; no float is involved.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext
from enum import StrEnum
from fractions import Fraction

from compliance.errors import ComplianceInputError

_PRECISION = 40
_ONE = Decimal(1)


@dataclass(frozen=True)
class CashFlow:
    """An advance or a payment ``periods`` full unit-periods plus ``fraction`` of one after the term begins."""

    amount: Decimal
    periods: int
    fraction: Fraction = Fraction(0)

    def __post_init__(self) -> None:
        if self.amount < 0:
            raise ComplianceInputError(f"cash flow amounts are not negative: {self.amount}")
        if self.periods < 0 or not 0 <= self.fraction < 1:
            raise ComplianceInputError(f"bad time for a cash flow: t={self.periods}, f={self.fraction}")


def series(amount: Decimal, count: int, first_periods: int, fraction: Fraction = Fraction(0)) -> list[CashFlow]:
    """``count`` equal flows one unit-period apart, the first at ``(first_periods, fraction)``."""
    return [CashFlow(amount, first_periods + k, fraction) for k in range(count)]


#: a flow as the solver uses it: its amount, full unit-periods and fraction of one as a Decimal
_Term = tuple[Decimal, int, Decimal]


def _terms(flows: Sequence[CashFlow]) -> list[_Term]:
    """Each flow's amount, periods and fraction (a Decimal at the solver's precision), worked out once per solve
    rather than at every step."""
    return [
        (flow.amount, flow.periods, Decimal(flow.fraction.numerator) / Decimal(flow.fraction.denominator))
        for flow in flows
    ]


def _gap(advances: Sequence[_Term], payments: Sequence[_Term], i: Decimal) -> tuple[Decimal, Decimal]:
    """Payments less advances, both discounted at ``i``, and its derivative in ``i``. The gap decreases in ``i``
    wherever the advances come before the payments, as in every loan.

    A flow ``(amount, t, f)`` is worth ``amount / ((1 + f*i) * (1 + i)**t)`` at the start, and that value's derivative
    in ``i`` is ``-value * (f / (1 + f*i) + t / (1 + i))``. A flow at whole unit-periods (``f`` = 0: every
    installment of a regular schedule, every advance) has ``1 + f*i`` exactly 1: its value and derivative are the same
    numbers without the multiplications by 1 and the added zero (Decimal rounds each result from the exact one)."""
    compound = _ONE + i
    gap = slope = Decimal(0)
    for amount, periods, fraction in payments:
        if fraction:
            simple = _ONE + fraction * i
            value = amount / (simple * compound**periods)
            gap, slope = gap + value, slope + -value * (fraction / simple + periods / compound)
        else:
            value = amount / compound**periods
            gap, slope = gap + value, slope + -value * (periods / compound)
    for amount, periods, fraction in advances:
        if fraction:
            simple = _ONE + fraction * i
            value = amount / (simple * compound**periods)
            gap, slope = gap - value, slope - -value * (fraction / simple + periods / compound)
        else:
            value = amount / compound**periods
            gap, slope = gap - value, slope - -value * (periods / compound)
    return gap, slope


_TOLERANCE = Decimal("1e-30")
_MAX_STEPS = 200


def unit_period_rate(advances: Sequence[CashFlow], payments: Sequence[CashFlow]) -> Decimal:
    """The unit-period rate ``i`` that solves the general equation, to about 1e-30.

    Newton's method inside a bracket that always holds the root: a Newton step that leaves the bracket or does not
    shrink it fast enough is replaced by a bisection step, so the result is as certain as plain bisection and
    usually found in a handful of steps instead of about a hundred.

    Raises:
        ComplianceInputError: no advance or no payment, or payments that do not cover the advances (a negative rate).
    """
    if not advances or not payments:
        raise ComplianceInputError("the APR needs at least one advance and one payment")
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        owed, paid = _terms(advances), _terms(payments)
        at_zero, _ = _gap(owed, paid, Decimal(0))
        if at_zero < 0:
            raise ComplianceInputError("the payments are less than the advances: the rate would be negative")
        if at_zero == 0:
            return Decimal(0)
        low, high = Decimal(0), Decimal(1)
        while _gap(owed, paid, high)[0] > 0:
            low, high = high, high * 2
            if high > 1_000_000:
                raise ComplianceInputError("no unit-period rate below 1,000,000 balances these cash flows")
        i = (low + high) / 2
        for _ in range(_MAX_STEPS):
            gap, slope = _gap(owed, paid, i)
            if gap == 0:
                return i
            if gap > 0:
                low = i
            else:
                high = i
            if high - low <= _TOLERANCE:
                return (low + high) / 2
            step = gap / slope if slope != 0 else Decimal(0)
            candidate = i - step
            if slope == 0 or not low < candidate < high:
                candidate = (low + high) / 2
            elif abs(step) <= _TOLERANCE:
                return candidate
            i = candidate
        return i


def actuarial_apr(
    advances: Sequence[CashFlow], payments: Sequence[CashFlow], unit_periods_per_year: Fraction | int
) -> Decimal:
    """The annual percentage rate in percent (unrounded; disclose it with ``round_apr``)."""
    i = unit_period_rate(advances, payments)
    w = Fraction(unit_periods_per_year)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return i * Decimal(w.numerator) / Decimal(w.denominator) * 100


def round_apr(apr_percent: Decimal) -> Decimal:
    """The APR as disclosed: percent to two decimals, half up (well inside the 1/8-point tolerance of 1026.22)."""
    return apr_percent.quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")


# --- unit-periods between dates, Appendix J (b)(5) -----------------------------------------------------------------


class UnitPeriod(StrEnum):
    DAY = "day"
    WEEK = "week"
    TWO_WEEKS = "two-weeks"
    FOUR_WEEKS = "four-weeks"
    SEMIMONTH = "semimonth"
    MONTH = "month"
    TWO_MONTHS = "two-months"
    QUARTER = "quarter"
    HALF_YEAR = "half-year"
    YEAR = "year"


_DAYS_PER_UNIT = {UnitPeriod.DAY: 1, UnitPeriod.WEEK: 7, UnitPeriod.TWO_WEEKS: 14, UnitPeriod.FOUR_WEEKS: 28}
_MONTHS_PER_UNIT = {UnitPeriod.MONTH: 1, UnitPeriod.TWO_MONTHS: 2, UnitPeriod.QUARTER: 3, UnitPeriod.HALF_YEAR: 6}

UNIT_PERIODS_PER_YEAR: dict[UnitPeriod, Fraction] = {
    UnitPeriod.DAY: Fraction(365),
    UnitPeriod.WEEK: Fraction(52),
    UnitPeriod.TWO_WEEKS: Fraction(26),
    UnitPeriod.FOUR_WEEKS: Fraction(13),
    UnitPeriod.SEMIMONTH: Fraction(24),
    UnitPeriod.MONTH: Fraction(12),
    UnitPeriod.TWO_MONTHS: Fraction(6),
    UnitPeriod.QUARTER: Fraction(4),
    UnitPeriod.HALF_YEAR: Fraction(2),
    UnitPeriod.YEAR: Fraction(1),
}


def add_months(day: date, months: int, *, month_end: bool = False) -> date:
    """``day`` moved by ``months`` calendar months; the day of month is clamped to the target month's length, or set
    to its last day when ``month_end`` (a series scheduled for the last day of each month, (b)(3)(iv))."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, last if month_end else min(day.day, last))


def _is_month_end(day: date) -> bool:
    return day.day == calendar.monthrange(day.year, day.month)[1]


def full_months_back(earlier: date, later: date) -> tuple[int, int]:
    """Whole months measured back from ``later`` that fit after ``earlier``, and the days left over.

    The months are the most ``k`` whose ``add_months(later, -k)`` (on the month's last day when ``later`` is one) is
    not before ``earlier``. A month back always lands in the month before, so that date for ``k`` = the months from
    ``earlier``'s month to ``later``'s lies in ``earlier``'s month: ``k`` is that many, or one less when it lands
    before ``earlier`` (found without stepping back month by month: twelve installments took 78 steps)."""
    month_end = _is_month_end(later)
    months = max((later.year - earlier.year) * 12 + later.month - earlier.month, 0)
    boundary = add_months(later, -months, month_end=month_end)
    if months and boundary < earlier:
        months -= 1
        boundary = add_months(later, -months, month_end=month_end)
    return months, (boundary - earlier).days


def unit_periods_between(earlier: date, later: date, unit: UnitPeriod) -> tuple[int, Fraction]:
    """``(t, f)``: full unit-periods and the fraction of a unit-period from ``earlier`` to ``later`` by (b)(5)."""
    if later < earlier:
        raise ComplianceInputError(f"{later} is before {earlier}")
    if unit in _DAYS_PER_UNIT:
        whole, rest = divmod((later - earlier).days, _DAYS_PER_UNIT[unit])
        return whole, Fraction(rest, _DAYS_PER_UNIT[unit])
    if unit is UnitPeriod.SEMIMONTH:
        # (b)(5)(iii): a semimonth is half a month, 15 days of a 30-day month.
        months, days = full_months_back(earlier, later)
        whole, rest = divmod(days, 15)
        return 2 * months + whole, Fraction(rest, 15)
    if unit is UnitPeriod.MONTH:
        months, days = full_months_back(earlier, later)
        whole, rest = divmod(days, 30)
        return months + whole, Fraction(rest, 30)
    if unit in _MONTHS_PER_UNIT:
        months, days = full_months_back(earlier, later)
        unit_days = 30 * _MONTHS_PER_UNIT[unit]
        whole, rest = divmod(30 * months + days, unit_days)
        return whole, Fraction(rest, unit_days)
    # A year: whole years back from the later date, then whole months over 12, else days over 365 ((b)(5)(v)).
    months, days = full_months_back(earlier, later)
    years, months_left = divmod(months, 12)
    if days == 0:
        return years, Fraction(months_left, 12)
    year_boundary = add_months(later, -12 * years, month_end=_is_month_end(later))
    return years, Fraction((year_boundary - earlier).days, 365)


def single_payment_periods(start: date, due: date) -> tuple[int, Fraction, Fraction]:
    """``(t, f, w)`` for a single advance repaid by a single payment ((b)(4)(ii)): a term under a year is itself the
    unit-period, 12 over its months per year when it is whole months, else 365 over its days; a longer term uses the
    year as unit-period."""
    days = (due - start).days
    if days <= 0:
        raise ComplianceInputError("a single-payment loan needs a positive term")
    if add_months(start, 12) > due:
        months, rest = full_months_back(start, due)
        if months and rest == 0:
            return 1, Fraction(0), Fraction(12, months)  # (b)(5)(vi): a whole number of months
        return 1, Fraction(0), Fraction(365, days)  # (b)(5)(vii)
    t, f = unit_periods_between(start, due, UnitPeriod.YEAR)
    return t, f, Fraction(1)
