"""Every worked example of Regulation Z Appendix J (c)(1)-(c)(6), as published (amounts, unit-periods and the
fractions of a unit-period the examples state), against the actuarial general equation, within 0.01 point."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest

from compliance.errors import ComplianceInputError
from compliance.tila.apr import (
    CashFlow,
    UnitPeriod,
    actuarial_apr,
    add_months,
    round_apr,
    series,
    single_payment_periods,
    unit_periods_between,
)

pytestmark = pytest.mark.unit

D = Decimal
F = Fraction


def one(amount: str) -> list[CashFlow]:
    return [CashFlow(D(amount), 0)]


# (label, advances, payments, unit-periods per year, published APR in percent)
EXAMPLES: list[tuple[str, list[CashFlow], list[CashFlow], Fraction, str]] = [
    ("(c)(1)(i) monthly", one("5000"), series(D("230"), 24, 1), F(12), "9.69"),
    ("(c)(1)(ii) monthly, long first period", one("6000"), series(D("200"), 36, 1, F(19, 30)), F(12), "11.82"),
    ("(c)(1)(iii) semimonthly, short first", one("5000"), series(D("219.17"), 24, 0, F(6, 15)), F(24), "10.34"),
    ("(c)(1)(iv) quarterly, long first", one("10000"), series(D("385"), 40, 1, F(39, 90)), F(4), "8.97"),
    ("(c)(1)(v) weekly, long first", one("500"), series(D("17.60"), 30, 4, F(4, 7)), F(52), "14.96"),
    (
        "(c)(2)(i) monthly, irregular first payment",
        one("5000"),
        [CashFlow(D("250"), 1), *series(D("230"), 23, 2)],
        F(12),
        "10.08",
    ),
    (
        "(c)(2)(ii) four-weekly, long first period and irregular first payment",
        one("400"),
        [CashFlow(D("39.50"), 1, F(5, 28)), *series(D("38.31"), 11, 2, F(5, 28))],
        F(13),
        "28.50",
    ),
    (
        "(c)(3)(i) monthly, irregular final payment",
        one("5000"),
        [*series(D("230"), 23, 1), CashFlow(D("280"), 24)],
        F(12),
        "10.50",
    ),
    (
        "(c)(3)(ii) biweekly, short first period and irregular final payment",
        one("200"),
        [*series(D("9.50"), 19, 0, F(8, 14)), CashFlow(D("30"), 19, F(8, 14))],
        F(26),
        "12.22",
    ),
    (
        "(c)(4)(i) monthly, irregular first and final payments",
        one("5000"),
        [CashFlow(D("250"), 1), *series(D("230"), 22, 2), CashFlow(D("280"), 24)],
        F(12),
        "10.90",
    ),
    (
        "(c)(4)(ii) bimonthly, short first period (52/60), irregular first and final",
        one("8000"),
        [CashFlow(D("449.36"), 0, F(52, 60)), *series(D("465"), 18, 1, F(52, 60)), CashFlow(D("200"), 19, F(52, 60))],
        F(6),
        "7.30",
    ),
    ("(c)(5)(i) single payment, 255 days", one("1000"), [CashFlow(D("1080"), 1)], F(365, 255), "11.45"),
    ("(c)(5)(ii) single payment, 6 months", one("1000"), [CashFlow(D("1044"), 1)], F(2), "8.80"),
    ("(c)(5)(iii) single payment, 18 months", one("1000"), [CashFlow(D("1135.19"), 1, F(6, 12))], F(1), "8.76"),
    ("(c)(5)(iv) single payment, 2 years", one("1000"), [CashFlow(D("1240"), 2)], F(1), "11.36"),
    (
        "(c)(6)(i) skipped payments",
        one("2135"),
        [
            *series(D("100"), 9, 0, F(26, 28)),
            *series(D("100"), 6, 10, F(12, 28)),
            *series(D("100"), 6, 16, F(26, 28)),
            *series(D("100"), 3, 23, F(12, 28)),
        ],
        F(13),
        "12.00",
    ),
    (
        "(c)(6)(ii) skipped payments and single payments",
        one("7350"),
        [
            *series(D("1000"), 3, 6, F(12, 30)),
            CashFlow(D("2000"), 12, F(12, 30)),
            *series(D("750"), 3, 18, F(12, 30)),
            CashFlow(D("1000"), 22, F(29, 30)),
        ],
        F(12),
        "10.22",
    ),
]


@pytest.mark.parametrize(
    ("label", "advances", "payments", "per_year", "published"), EXAMPLES, ids=[e[0] for e in EXAMPLES]
)
def test_appendix_j_example(
    label: str, advances: list[CashFlow], payments: list[CashFlow], per_year: Fraction, published: str
) -> None:
    apr = actuarial_apr(advances, payments, per_year)
    assert abs(apr - D(published)) <= D("0.01"), f"{label}: computed {apr}, published {published}"
    assert round_apr(apr) == D(published)


def test_every_section_c1_to_c6_is_covered() -> None:
    sections = {label.split(")")[0] + ")" + label.split(")")[1] + ")" for label, *_ in EXAMPLES}
    assert {s[:6] for s in sections} == {"(c)(1)", "(c)(2)", "(c)(3)", "(c)(4)", "(c)(5)", "(c)(6)"}
    assert len(EXAMPLES) == 17


def test_multiple_advances_against_an_independent_computation() -> None:
    """A construction loan: three advances, then twelve payments. The payments are built by rolling the balance
    forward month by month at exactly 1% a month, so the APR must come back as 12.00% (independent of the solver)."""
    rate = D("0.01")
    advances = [CashFlow(D("10000"), 0), CashFlow(D("5000"), 2), CashFlow(D("2500"), 3)]
    balance = D(0)
    for month in range(4):
        balance = balance * (1 + rate) + sum((a.amount for a in advances if a.periods == month), D(0))
    # equal payments at months 4..15 that retire the month-3 balance exactly
    annuity = sum((1 / (1 + rate) ** k for k in range(1, 13)), D(0))
    payment = balance / annuity
    payments = series(payment, 12, 4)
    assert abs(actuarial_apr(advances, payments, 12) - D("12")) < D("1e-20")


def test_fraction_earns_simple_interest_not_compound() -> None:
    # One advance, one payment a half unit-period later: i solves 1000 * (1 + i/2) = 1050 exactly, so i = 10%.
    apr = actuarial_apr(one("1000"), [CashFlow(D("1050"), 0, F(1, 2))], 1)
    assert abs(apr - D("10")) < D("1e-25")


def test_negative_rate_refused() -> None:
    with pytest.raises(ComplianceInputError, match="negative"):
        actuarial_apr(one("1000"), [CashFlow(D("900"), 1)], 12)


def test_zero_finance_charge_is_zero_apr() -> None:
    assert actuarial_apr(one("1200"), series(D("100"), 12, 1), 12) == 0


@pytest.mark.parametrize(
    ("earlier", "later", "unit", "expected"),
    [
        # (b)(5)(ii): months back from the later date, the leftover days over 30.
        (date(2026, 2, 10), date(2026, 4, 1), UnitPeriod.MONTH, (1, F(19, 30))),
        (date(2026, 1, 31), date(2026, 2, 28), UnitPeriod.MONTH, (1, F(0))),  # month-end series, (b)(3)(iv)
        (date(2026, 1, 15), date(2026, 3, 15), UnitPeriod.MONTH, (2, F(0))),
        (date(2026, 1, 1), date(2026, 1, 21), UnitPeriod.MONTH, (0, F(20, 30))),
        # (b)(5)(iii): multi-month units count 30 days a month.
        (date(2026, 1, 1), date(2026, 5, 10), UnitPeriod.QUARTER, (1, F(39, 90))),
        (date(2026, 1, 1), date(2026, 1, 25), UnitPeriod.WEEK, (3, F(3, 7))),
        (date(2026, 1, 1), date(2026, 1, 7), UnitPeriod.SEMIMONTH, (0, F(6, 15))),
        # (b)(5)(v): a year unit-period, the remainder in months when whole, else in days over 365.
        (date(2026, 1, 1), date(2027, 7, 1), UnitPeriod.YEAR, (1, F(6, 12))),
        (date(2026, 1, 1), date(2027, 1, 11), UnitPeriod.YEAR, (1, F(10, 365))),
    ],
)
def test_unit_periods_between_dates(
    earlier: date, later: date, unit: UnitPeriod, expected: tuple[int, Fraction]
) -> None:
    assert unit_periods_between(earlier, later, unit) == expected


def test_single_payment_periods_follow_b5_vi_and_vii() -> None:
    assert single_payment_periods(date(2026, 1, 1), date(2026, 7, 1)) == (1, F(0), F(2))  # 6 whole months
    assert single_payment_periods(date(2026, 1, 1), date(2026, 9, 13)) == (1, F(0), F(365, 255))
    assert single_payment_periods(date(2026, 1, 1), date(2027, 7, 1)) == (1, F(1, 2), F(1))
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
