"""The APR root finder (Newton inside a bisection bracket) agrees with the plain bisection it replaced: to the cent
on random offers, single-payment and in installments, and to far below a cent on random cash flows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from unittest import mock

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from compliance.errors import ComplianceInputError
from compliance.tila import disclosure as disclosure_module
from compliance.tila.apr import CashFlow, actuarial_apr, round_apr, series, unit_period_rate
from compliance.tila.disclosure import (
    Frequency,
    InstallmentPlan,
    LoanTerms,
    disclose,
    installment_term_days,
    mapr_percent,
)

pytestmark = pytest.mark.unit


def bisection_rate(advances: Sequence[CashFlow], payments: Sequence[CashFlow]) -> Decimal:
    """The solver as it was before Newton: bisection to 1e-30 at 40 digits."""
    with localcontext() as ctx:
        ctx.prec = 40

        def present_value(flows: Sequence[CashFlow], i: Decimal) -> Decimal:
            total = Decimal(0)
            for flow in flows:
                fraction = Decimal(flow.fraction.numerator) / Decimal(flow.fraction.denominator)
                total += flow.amount / ((1 + fraction * i) * (1 + i) ** flow.periods)
            return total

        def gap(i: Decimal) -> Decimal:
            return present_value(payments, i) - present_value(advances, i)

        if gap(Decimal(0)) == 0:
            return Decimal(0)
        low, high = Decimal(0), Decimal(1)
        while gap(high) > 0:
            low, high = high, high * 2
        while high - low > Decimal("1e-30"):
            middle = (low + high) / 2
            if gap(middle) > 0:
                low = middle
            else:
                high = middle
        return (low + high) / 2


def bisection_apr(
    advances: Sequence[CashFlow], payments: Sequence[CashFlow], unit_periods_per_year: Fraction | int
) -> Decimal:
    w = Fraction(unit_periods_per_year)
    with localcontext() as ctx:
        ctx.prec = 40
        return bisection_rate(advances, payments) * Decimal(w.numerator) / Decimal(w.denominator) * 100


offers = st.builds(
    lambda cents, rate_bps, term_days, fee_bps, plan, start_day: (cents, rate_bps, term_days, fee_bps, plan, start_day),
    st.integers(100_00, 5_000_000_00),
    st.integers(0, 100_000),
    st.integers(1, 365),
    st.integers(0, 1_000),
    st.one_of(
        st.none(),
        st.builds(InstallmentPlan, st.integers(1, 36), st.sampled_from([Frequency.MONTHLY, Frequency.WEEKLY])),
    ),
    st.integers(0, 3_000),
)


@settings(max_examples=60, deadline=None)
@given(offers)
def test_agrees_with_the_old_solver_to_the_cent_on_random_offers(
    offer: tuple[int, int, int, int, InstallmentPlan | None, int],
) -> None:
    cents, rate_bps, term_days, fee_bps, plan, start_day = offer
    principal = Decimal(cents) / 100
    fee = (principal * fee_bps / 10_000).quantize(Decimal("0.01"))
    start = datetime(2024, 1, 1, 12, tzinfo=UTC) + timedelta(days=start_day)
    if plan is not None:
        term_days = installment_term_days(start, plan)
    terms = LoanTerms(principal, "USDC", 6, rate_bps, term_days, fee, start, installments=plan)
    try:
        fast = disclose(terms)
    except ComplianceInputError:  # terms no equal installment repays without a balloon (rounding policy 5): no APR
        assume(False)
    with mock.patch.object(disclosure_module, "actuarial_apr", bisection_apr):
        slow = disclose(terms)
        slow_mapr = mapr_percent(terms)
    assert fast.apr_unrounded is not None
    assert slow.apr_unrounded is not None
    assert abs(fast.apr_unrounded - slow.apr_unrounded) < Decimal("1e-20")
    if not _on_a_half_cent(fast.apr_unrounded):
        assert fast.apr_percent == slow.apr_percent
    assert abs(mapr_percent(terms, fast) - slow_mapr) < Decimal("1e-20")  # the MAPR reuses the APR solved once


def _on_a_half_cent(apr_percent: Decimal) -> bool:
    """An APR exactly between two disclosed figures: bisection approaches it from one side, so rounding its answer
    may give the figure below, where the exact answer rounds half up."""
    return abs(apr_percent * 100 % 1 - Decimal("0.5")) < Decimal("1e-15")


@settings(max_examples=60, deadline=None)
# 672 advanced, 1,511.93 repaid one month later: an APR of exactly 1,499.875% (found by a run with other seeds)
@example(advance=672, markup_bps=12_499, count=1, first=0, fraction=Fraction(0))
@given(
    advance=st.integers(1, 10**9),
    markup_bps=st.integers(0, 200_000),
    count=st.integers(1, 60),
    first=st.integers(0, 3),
    fraction=st.fractions(min_value=0, max_value=Fraction(29, 30), max_denominator=30),
)
def test_unit_period_rate_matches_bisection_on_random_cash_flows(
    advance: int, markup_bps: int, count: int, first: int, fraction: Fraction
) -> None:
    total = Decimal(advance) * (10_000 + markup_bps) / 10_000
    payments = series((total / count).quantize(Decimal("0.01")), count, first + 1, fraction)
    advances = [CashFlow(Decimal(advance), 0)]
    if sum(p.amount for p in payments) < advance:
        return  # rounding the installments down left a negative rate: refused by both
    assert abs(unit_period_rate(advances, payments) - bisection_rate(advances, payments)) < Decimal("1e-25")
    exact, bisected = actuarial_apr(advances, payments, 12), bisection_apr(advances, payments, 12)
    assert abs(exact - bisected) < Decimal("1e-20")  # far below a cent
    if _on_a_half_cent(exact):  # disclosed half up, as the exact figure says
        assert round_apr(exact) == round_apr(bisected + Decimal("1e-20"))
    else:
        assert round_apr(exact) == round_apr(bisected)
