"""Equal installments never hide a balloon payment (rounding policy steps 4-5, docs/compliance.md).

A cent on the regular installment moves the last one by that cent compounded over the rest of the schedule. Where
half up overpaid, the regular installment was lowered a cent at a time until the last one was positive, so the
shortfall compounded into a balloon disclosed as ``equal-installments/...``: $48,042.96 at 32.13% over 360 months
paid 1,286.44 a month and 4,236.98 at the end: the cent a month it was lowered by came to 5,122.78 on the last one.
Now the last installment (less any balloon the plan states) must be above zero and at most twice the regular one
— more is a balloon payment by 12 CFR 1026.18(s)(5)(i) — or the terms are refused: where no regular installment
near the exact level payment lands the last one there, no equal installments on the cent repay the loan.

Every expected number is worked out again in exact fractions (``tests.support.amortization``)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from compliance.errors import ComplianceInputError
from compliance.tila.apr import add_months
from compliance.tila.disclosure import Frequency, InstallmentPlan, LoanTerms, disclose, installment_term_days
from compliance.tila.schedule import DayCount, amortize
from tests.support.amortization import exact_level_payment, half_up, last_installment, nearest_regulars, periods

pytestmark = pytest.mark.unit

D = Decimal


def _monthly(start: date, count: int) -> list[date]:
    return [add_months(start, k) for k in range(1, count + 1)]


def _every(days: int, start: date, count: int) -> list[date]:
    return [start + timedelta(days=days * k) for k in range(1, count + 1)]


HIDDEN_BALLOONS = [
    # principal, rate, start, due dates, day count, what the cent-at-a-time rounding disclosed (regular, last)
    ("48042.96", 3213, date(2026, 5, 22), _monthly(date(2026, 5, 22), 360), DayCount.THIRTY_360, "1286.44", "4236.98"),
    (
        "350000.00",
        3600,
        date(2026, 1, 15),
        _monthly(date(2026, 1, 15), 480),
        DayCount.THIRTY_360,
        "10500.00",
        "360500.00",
    ),
    (
        "5000.00",
        3600,
        date(2026, 1, 15),
        _every(14, date(2026, 1, 15), 1040),
        DayCount.THIRTY_360,
        "69.14",
        "1053839.88",
    ),
    ("1500.00", 1800, date(2026, 1, 15), _every(14, date(2026, 1, 15), 600), DayCount.ACTUAL_365, "10.52", "62.04"),
    ("1.00", 0, date(2026, 1, 15), _every(7, date(2026, 1, 15), 60), DayCount.ACTUAL_365, "0.01", "0.41"),
]


@pytest.mark.parametrize(
    ("principal", "rate_bps", "start", "dues", "day_count", "old_regular", "old_last"),
    HIDDEN_BALLOONS,
    ids=[
        "48k-32pct-360-monthly",
        "350k-36pct-480-monthly",
        "5k-36pct-1040-biweekly",
        "1500-18pct-600-biweekly",
        "1-dollar-60-weekly",
    ],
)
def test_equal_installments_whose_last_one_would_be_a_balloon_are_refused(
    principal: str, rate_bps: int, start: date, dues: list[date], day_count: DayCount, old_regular: str, old_last: str
) -> None:
    fractions = periods(start, dues, day_count)
    exact = Fraction(D(principal))
    # what was disclosed: all but the last at the regular installment, the last a balloon more than twice it
    assert last_installment(exact, rate_bps, fractions, Fraction(D(old_regular))) == Fraction(D(old_last))
    assert D(old_last) > 2 * D(old_regular)
    # and no regular installment within a cent of the level payment does better: each leaves nothing for the last
    # installment, or a balloon
    for regular, last in nearest_regulars(exact, rate_bps, fractions).items():
        assert last <= 0 or last > 2 * regular, (regular, last)
    with pytest.raises(
        ComplianceInputError, match=re.escape(f"cannot be repaid in {len(dues)} equal installments on the 0.01")
    ):
        amortize(D(principal), rate_bps, start, dues, day_count)


def test_the_refusal_names_the_nearest_schedule_and_why() -> None:
    start = date(2026, 5, 22)
    with pytest.raises(ComplianceInputError) as refused:
        amortize(D("48042.96"), 3213, start, _monthly(start, 360), DayCount.THIRTY_360)
    assert str(refused.value).startswith(
        "48042.96 at 32.13% cannot be repaid in 360 equal installments on the 0.01: the nearest regular installment, "
        "1286.44, leaves 4236.98 for the last one, which must be above zero and at most twice the regular one (a "
        "balloon payment, 12 CFR 1026.18(s)(5)(i))"
    )


def test_the_disclosure_of_such_terms_is_refused() -> None:
    """Through ``disclose``, as quoting meets it: the offer is dropped with the reason, never disclosed."""
    start = datetime(2026, 1, 15, 10, tzinfo=UTC)
    plan = InstallmentPlan(480, Frequency.MONTHLY, DayCount.THIRTY_360)
    terms = LoanTerms(D("350000.00"), "USDC", 6, 3600, installment_term_days(start, plan), D(0), start, plan)
    with pytest.raises(ComplianceInputError, match=re.escape("leaves 360500.00 for the last one")):
        disclose(terms)


def test_half_up_overpaying_leaves_a_smaller_last_installment() -> None:
    """$1,000 at 12% over 12 months (30/360): 88.8488 rounds up to 88.85 and the last installment is a little
    smaller — allowed, as any last installment above zero and at most twice the regular one."""
    start = date(2026, 1, 1)
    rows = amortize(D("1000.00"), 1200, start, _monthly(start, 12), DayCount.THIRTY_360)
    fractions = periods(start, _monthly(start, 12), DayCount.THIRTY_360)
    regular = half_up(exact_level_payment(Fraction(1000), 1200, fractions))
    assert regular == Fraction(D("88.85"))
    assert rows[0].payment == D("88.85")
    assert Fraction(rows[-1].payment) == last_installment(Fraction(1000), 1200, fractions, regular)
    assert 0 < rows[-1].payment < rows[0].payment


def test_half_up_leaving_nothing_for_the_last_installment_lowers_the_regular_one_a_cent_once() -> None:
    """$6.48 at 12% over 36 months: 0.22 a month leaves exactly 0.00 for the last installment, so the regular one is
    0.21 and the last 0.42 — twice it, the most the rule allows."""
    start = date(2026, 1, 15)
    dues = _monthly(start, 36)
    fractions = periods(start, dues, DayCount.THIRTY_360)
    assert half_up(exact_level_payment(Fraction(D("6.48")), 1200, fractions)) == Fraction(D("0.22"))
    assert last_installment(Fraction(D("6.48")), 1200, fractions, Fraction(D("0.22"))) == 0
    rows = amortize(D("6.48"), 1200, start, dues, DayCount.THIRTY_360)
    assert {r.payment for r in rows[:-1]} == {D("0.21")}
    assert rows[-1].payment == D("0.42")
    assert rows[-1].balance_after == 0


def test_a_stated_balloon_is_not_counted_against_the_last_installment() -> None:
    """A balloon the plan states is the lender's: the last installment less it is held to the rule."""
    start = date(2026, 1, 15)
    rows = amortize(D("10000.00"), 900, start, _monthly(start, 24), DayCount.THIRTY_360, balloon=D("6000.00"))
    assert rows[-1].payment > 2 * rows[0].payment
    assert 0 < rows[-1].payment - D("6000.00") <= 2 * rows[0].payment
