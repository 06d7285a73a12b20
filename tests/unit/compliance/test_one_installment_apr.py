"""An installment plan of one installment (``repayment: installments``, ``installments: 1``, which the Provider Quote
Protocol allows) is a single advance repaid by a single payment: Appendix J measures it in its own term
((b)(5)(vi) for whole months, (b)(5)(vii) in days), never in the plan's frequency. Measured in whole quarters,
semimonths, weeks or months with compounding, its APR came out 0.13 to 1.8 points low — beyond the 1/8-point
tolerance of 12 CFR 1026.22(a)(2) — and it passed the 36% caps that the same loan is over.

The expected APRs are worked out here from the rule itself with exact fractions: one unit-period, the term, so the
rate is the payment over the amount financed, less one, times the unit-periods in a year."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest

from compliance.jurisdiction import check_offer, load_rules
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
START = datetime(2026, 1, 1, 15, tzinfo=UTC)


def _terms(plan: InstallmentPlan, rate_bps: int, fee: str) -> LoanTerms:
    return LoanTerms(D("1000.00"), "USDC", 6, rate_bps, installment_term_days(START, plan), D(fee), START, plan)


def _single_payment_apr(d: Disclosure, unit_periods_per_year: Fraction) -> Fraction:
    """The APR of one advance (the amount financed, at the start) repaid by one payment a unit-period later."""
    (payment,) = d.payments
    return (Fraction(payment.amount) / Fraction(d.amount_financed) - 1) * unit_periods_per_year * 100


def _assert_apr(d: Disclosure, expected: Fraction) -> None:
    assert d.apr_unrounded is not None
    assert abs(Fraction(d.apr_unrounded) - expected) < Fraction(1, 10**20)
    as_decimal = D(expected.numerator) / D(expected.denominator)
    assert d.apr_percent == as_decimal.quantize(D("0.01"), rounding=ROUND_HALF_UP)


def test_one_payment_170_days_out_on_a_quarterly_plan_is_measured_in_days() -> None:
    """$1,000 at 30% with a $30 fee, one payment 170 days later: 139.73 interest (Actual/365), 970.00 financed.
    By (b)(5)(vii) the APR is (1139.73 / 970 - 1) x 365/170 = 37.57%; a quarter and 80/90 of one, compounded,
    gave 35.78%."""
    plan = InstallmentPlan(1, Frequency.QUARTERLY, DayCount.ACTUAL_365, date(2026, 6, 20))
    d = disclose(_terms(plan, 3000, "30.00"))
    (payment,) = d.payments
    assert (payment.due, payment.amount, payment.interest) == (date(2026, 6, 20), D("1139.73"), D("139.73"))
    _assert_apr(d, _single_payment_apr(d, Fraction(365, 170)))
    assert d.apr_percent == D("37.57")
    # the rest of the disclosure is the installment plan's, as before
    assert (d.repayment, d.day_count, d.term_days) == ("equal-installments/quarterly", "actual/365", 170)
    assert (d.finance_charge, d.total_of_payments) == (D("169.73"), D("1139.73"))


def test_one_payment_two_whole_months_out_is_measured_in_months() -> None:
    """One monthly installment due two whole months later: (b)(5)(vi), 12/2 unit-periods a year. (1050 / 970 - 1)
    x 6 = 49.48%; measured as two compounded months it was 48.50%."""
    plan = InstallmentPlan(1, Frequency.MONTHLY, DayCount.THIRTY_360, date(2026, 3, 1))
    d = disclose(_terms(plan, 3000, "30.00"))
    assert d.payments[0].amount == D("1050.00")
    _assert_apr(d, _single_payment_apr(d, Fraction(6)))
    assert d.apr_percent == D("49.48")


@pytest.mark.parametrize(
    ("frequency", "days", "amount", "apr"),
    [
        (Frequency.SEMIMONTHLY, 15, "1007.40", "42.77"),  # a semimonth and no fraction gave 42.18
        (Frequency.WEEKLY, 7, "1003.45", "70.84"),  # a week, 70.65
        (Frequency.BIWEEKLY, 14, "1006.90", "44.51"),  # two weeks, 44.38
    ],
)
def test_one_regular_installment_is_measured_in_its_days(
    frequency: Frequency, days: int, amount: str, apr: str
) -> None:
    d = disclose(_terms(InstallmentPlan(1, frequency, DayCount.ACTUAL_365), 1800, "10.00"))
    (payment,) = d.payments
    assert ((payment.due - START.date()).days, payment.amount) == (days, D(amount))
    _assert_apr(d, _single_payment_apr(d, Fraction(365, days)))
    assert d.apr_percent == D(apr)


def test_one_installment_is_held_to_the_36_percent_caps_as_the_single_payment_it_is() -> None:
    """The quarterly one-installment loan above: 37.57% is over the Military Lending Act's 36% MAPR (Alabama has no
    cap of its own) and over Illinois's 36% MAPR cap; at 35.78% it was kept under both."""
    rules = load_rules()
    terms = _terms(InstallmentPlan(1, Frequency.QUARTERLY, DayCount.ACTUAL_365, date(2026, 6, 20)), 3000, "30.00")
    d = disclose(terms)
    assert check_offer(rules, terms, d, "US-AL", covered_borrower=False).kept
    covered = check_offer(rules, terms, d, "US-AL", covered_borrower=True)
    assert not covered.kept
    assert [r.code for r in covered.reasons] == ["mla.mapr-exceeded"]
    assert round(covered.mapr_percent, 2) == D("37.57")
    illinois = check_offer(rules, terms, d, "US-IL", covered_borrower=False)
    assert [r.code for r in illinois.reasons] == ["usury.cap-exceeded"]
    # the same loan as a single payment (interest to the base unit, 139.726028) is measured and dropped alike
    single = LoanTerms(D("1000.00"), "USDC", 6, 3000, 170, D("30.00"), START)
    single_disclosure = disclose(single)
    assert single_disclosure.apr_percent == D("37.57")
    assert not check_offer(rules, single, single_disclosure, "US-IL", covered_borrower=False).kept
