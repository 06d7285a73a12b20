"""Every installment shape lenders send, disclosed through Appendix J: semimonthly and quarterly frequencies, an odd
first period, a balloon final payment; and a rate finer than a basis point refused, never rounded.

Each disclosure is checked against Appendix J's method computed here on its own: every payment's time counted back
from its due date to the start in the shape's unit-period ((b)(5)), the general equation ((b)(8)) solved at the
disclosed APR to within its rounding, and the schedule adding up (interest + principal, total of payments)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction

import pytest

from compliance.errors import ComplianceInputError
from compliance.tila.apr import UNIT_PERIODS_PER_YEAR, CashFlow, UnitPeriod, unit_period_rate, unit_periods_between
from compliance.tila.disclosure import (
    Disclosure,
    Frequency,
    InstallmentPlan,
    LoanTerms,
    disclose,
    installment_term_days,
)
from compliance.tila.schedule import DayCount

pytestmark = pytest.mark.unit

D = Decimal
START = datetime(2026, 1, 10, tzinfo=UTC)
UNIT = {
    Frequency.SEMIMONTHLY: UnitPeriod.SEMIMONTH,
    Frequency.QUARTERLY: UnitPeriod.QUARTER,
    Frequency.MONTHLY: UnitPeriod.MONTH,
    Frequency.BIWEEKLY: UnitPeriod.TWO_WEEKS,
}


def _terms(plan: InstallmentPlan, principal: str = "6000.00", fee: str = "60.00", rate_bps: int = 1150) -> LoanTerms:
    return LoanTerms(D(principal), "USDC", 6, rate_bps, installment_term_days(START, plan), D(fee), START, plan)


def _check_against_appendix_j(d: Disclosure, frequency: Frequency) -> None:
    unit = UNIT[frequency]
    flows = [CashFlow(p.amount, *unit_periods_between(START.date(), p.due, unit)) for p in d.payments]
    i = unit_period_rate([CashFlow(d.amount_financed, 0)], flows)
    apr = i * UNIT_PERIODS_PER_YEAR[unit].numerator / UNIT_PERIODS_PER_YEAR[unit].denominator * 100
    assert abs(apr - d.apr_percent) <= D("0.005"), f"Appendix J gives {apr:.4f}%, disclosed {d.apr_percent}%"
    assert sum(p.principal for p in d.payments) == d.principal
    assert d.total_of_payments == sum(p.amount for p in d.payments)
    assert d.total_of_payments == d.amount_financed + d.finance_charge
    assert all(p.amount == p.principal + p.interest for p in d.payments)


def test_semimonthly_payments_fall_twice_a_month_and_disclose_by_appendix_j() -> None:
    plan = InstallmentPlan(24, Frequency.SEMIMONTHLY, DayCount.ACTUAL_365)
    d = disclose(_terms(plan))
    dues = [p.due for p in d.payments]
    assert dues[:4] == [date(2026, 1, 25), date(2026, 2, 10), date(2026, 2, 25), date(2026, 3, 10)]
    assert d.repayment == "equal-installments/semimonthly"
    _check_against_appendix_j(d, Frequency.SEMIMONTHLY)
    assert D("13.2") < d.apr_percent < D("13.6")  # 11.50% plus a 1% fee paid down over a year: about 1.9 points


def test_semimonthly_on_the_15th_and_month_end() -> None:
    plan = InstallmentPlan(4, Frequency.SEMIMONTHLY, first_payment=date(2026, 1, 31))
    assert plan.due_dates(START.date()) == [date(2026, 1, 31), date(2026, 2, 15), date(2026, 2, 28), date(2026, 3, 15)]


def test_quarterly_payments_disclose_by_appendix_j() -> None:
    plan = InstallmentPlan(8, Frequency.QUARTERLY, DayCount.THIRTY_360)
    d = disclose(_terms(plan))
    assert [p.due for p in d.payments][:3] == [date(2026, 4, 10), date(2026, 7, 10), date(2026, 10, 10)]
    _check_against_appendix_j(d, Frequency.QUARTERLY)
    assert d.term_days == (date(2028, 1, 10) - START.date()).days


@pytest.mark.parametrize(
    ("first", "periods"),
    [(date(2026, 2, 25), (1, Fraction(15, 30))), (date(2026, 2, 1), (0, Fraction(22, 30)))],  # long, short
)
def test_an_odd_first_period_shifts_every_payment_and_its_interest(first: date, periods: tuple[int, Fraction]) -> None:
    regular = disclose(_terms(InstallmentPlan(12, Frequency.MONTHLY, DayCount.ACTUAL_365)))
    odd = disclose(_terms(InstallmentPlan(12, Frequency.MONTHLY, DayCount.ACTUAL_365, first_payment=first)))
    assert [p.due for p in odd.payments][:2] == [first, first.replace(month=first.month + 1)]
    first_days = (first - START.date()).days
    assert odd.payments[0].interest == (D("6000.00") * D("0.115") * first_days / 365).quantize(D("0.01"))
    assert (odd.finance_charge > regular.finance_charge) == (first_days > 31)
    _check_against_appendix_j(odd, Frequency.MONTHLY)
    t, f = unit_periods_between(START.date(), first, UnitPeriod.MONTH)
    assert (t, f) == periods


def test_a_first_payment_before_the_start_or_too_late_is_refused() -> None:
    with pytest.raises(ComplianceInputError, match="after the start"):
        InstallmentPlan(3, first_payment=date(2026, 1, 10)).due_dates(START.date())
    with pytest.raises(ComplianceInputError, match="two periods"):
        InstallmentPlan(3, first_payment=date(2026, 6, 1)).due_dates(START.date())


def test_a_balloon_is_repaid_with_the_last_payment() -> None:
    plan = InstallmentPlan(12, Frequency.MONTHLY, DayCount.THIRTY_360, balloon=D("3000.00"))
    d = disclose(_terms(plan))
    level = d.payments[0].amount
    assert all(p.amount == level for p in d.payments[:-1])
    assert abs(d.payments[-1].amount - (level + D("3000.00"))) < D("0.10")  # twelve installments' rounding
    assert d.repayment == "installments-with-balloon/monthly"
    _check_against_appendix_j(d, Frequency.MONTHLY)
    plain = disclose(_terms(InstallmentPlan(12, Frequency.MONTHLY, DayCount.THIRTY_360)))
    assert level < plain.payments[0].amount
    assert d.finance_charge > plain.finance_charge  # more principal outstanding for longer


def test_balloon_biweekly_with_an_odd_first_period() -> None:
    plan = InstallmentPlan(
        26, Frequency.BIWEEKLY, DayCount.ACTUAL_365, first_payment=date(2026, 1, 30), balloon=D("1000.00")
    )
    d = disclose(_terms(plan))
    _check_against_appendix_j(d, Frequency.BIWEEKLY)


def test_a_balloon_must_be_less_than_the_principal() -> None:
    with pytest.raises(ComplianceInputError, match="balloon"):
        _terms(InstallmentPlan(12, balloon=D("6000.00")))


@pytest.mark.parametrize("rate", [D("948.22"), D("948.5"), 948.0, "948", True])
def test_a_rate_finer_than_a_basis_point_or_not_a_number_is_refused(rate: object) -> None:
    plan = InstallmentPlan(12)
    with pytest.raises(ComplianceInputError, match="basis point"):
        LoanTerms(D("6000"), "USDC", 6, rate, installment_term_days(START, plan), D(0), START, plan)  # type: ignore[arg-type]


def test_a_whole_decimal_rate_is_represented_exactly_as_an_integer() -> None:
    plan = InstallmentPlan(12)
    terms = LoanTerms(D("6000"), "USDC", 6, D("948"), installment_term_days(START, plan), D(0), START, plan)  # type: ignore[arg-type]
    assert terms.rate_bps == 948
    assert type(terms.rate_bps) is int
    assert b'"rateBps":948,' in disclose(terms).to_canonical_json()
