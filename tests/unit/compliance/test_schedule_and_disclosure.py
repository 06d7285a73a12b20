"""Amortization schedules (hand-computed cases and properties) and the offer disclosure (loan model, terms hash)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.errors import ComplianceInputError
from compliance.tila.apr import CashFlow, actuarial_apr
from compliance.tila.disclosure import (
    CONTRACT_REFERENCE,
    Disclosure,
    Frequency,
    InstallmentPlan,
    LoanTerms,
    MaprCharge,
    MaprChargeKind,
    SecurityInterest,
    disclose,
    installment_term_days,
    mapr_percent,
    single_payment_interest,
)
from compliance.tila.schedule import DayCount, amortize, year_fraction
from tests.support.amortization import CENT, exact_level_payment, half_up, last_installment, periods

pytestmark = pytest.mark.unit

D = Decimal
START = datetime(2026, 1, 1, tzinfo=UTC)


def test_thirty_360_monthly_by_hand() -> None:
    # 1,000.00 at 12% over 12 months: payment 1000 * 0.01 / (1 - 1.01**-12) = 88.8488 -> 88.85.
    dues = [date(2026, 1 + k, 1) for k in range(1, 12)] + [date(2027, 1, 1)]
    rows = amortize(D("1000.00"), 1200, date(2026, 1, 1), dues, DayCount.THIRTY_360)
    assert rows[0].payment == D("88.85")
    assert (rows[0].interest, rows[0].principal, rows[0].balance_after) == (D("10.00"), D("78.85"), D("921.15"))
    assert (rows[1].interest, rows[1].principal, rows[1].balance_after) == (D("9.21"), D("79.64"), D("841.51"))
    assert rows[-1].balance_after == 0
    assert sum(r.principal for r in rows) == D("1000.00")
    # the last installment absorbs the rounding: it differs from the regular one by a few cents only
    assert abs(rows[-1].payment - D("88.85")) <= D("0.05")
    assert rows[-1].payment != D("88.85") or sum(r.interest for r in rows) == D("66.20")


def test_an_interest_exactly_on_half_a_cent_is_rounded_up() -> None:
    """1,597.50 at 9.4% for a four-month first period (a third of a year, 30/360) is exactly 50.055: 50.06 by the
    rounding policy. Worked out in 28 decimal digits it was 50.05499… and became 50.05, so a lender that followed the
    policy to the letter had its offer dropped as a schedule mismatch."""
    dues = [date(2026, 5, 15), date(2026, 8, 15), date(2026, 11, 15)]
    rows = amortize(D("1597.50"), 940, date(2026, 1, 15), dues, DayCount.THIRTY_360)
    assert Fraction(159_750, 100) * Fraction(940, 10_000) * Fraction(1, 3) == Fraction(50_055, 1_000)
    assert rows[0].interest == D("50.06")


def test_actual_365_against_exact_fractions() -> None:
    # Two payments, 31 and 28 days, 10% a year: the level payment solved exactly with Fractions.
    start, dues = date(2026, 1, 1), [date(2026, 2, 1), date(2026, 3, 1)]
    g1, g2 = 1 + Fraction(1, 10) * Fraction(31, 365), 1 + Fraction(1, 10) * Fraction(28, 365)
    exact = Fraction(1000) / (1 / g1 + 1 / (g1 * g2))
    payment = (D(exact.numerator) / D(exact.denominator)).quantize(D("0.01"), rounding=ROUND_HALF_UP)
    rows = amortize(D("1000.00"), 1000, start, dues, DayCount.ACTUAL_365)
    assert rows[0].payment == payment == D("506.17")
    assert rows[0].interest == D("8.49")  # 1000 * 0.10 * 31 / 365 = 8.4931...
    assert rows[0].balance_after == D("502.32")
    assert rows[1].interest == D("3.85")  # 502.32 * 0.10 * 28 / 365 = 3.8534...
    assert rows[1].payment == D("506.17")
    assert rows[1].balance_after == 0


def test_year_fractions() -> None:
    assert year_fraction(date(2026, 1, 31), date(2026, 2, 28), DayCount.THIRTY_360) == Fraction(28, 360)
    assert year_fraction(date(2026, 1, 30), date(2026, 3, 31), DayCount.THIRTY_360) == Fraction(60, 360)
    assert year_fraction(date(2027, 12, 15), date(2028, 1, 15), DayCount.ACTUAL_ACTUAL) == Fraction(17, 365) + Fraction(
        14, 366
    )
    assert year_fraction(date(2028, 2, 1), date(2028, 3, 1), DayCount.ACTUAL_365) == Fraction(29, 365)


@settings(max_examples=150, deadline=None)
@given(
    cents=st.integers(min_value=100, max_value=10**9),
    rate_bps=st.integers(min_value=0, max_value=6000),
    count=st.integers(min_value=1, max_value=60),
    fee_cents=st.integers(min_value=0, max_value=99),
    day_count=st.sampled_from(list(DayCount)),
    frequency=st.sampled_from(list(Frequency)),
    start_offset=st.integers(min_value=0, max_value=3000),
)
def test_schedule_properties(
    cents: int, rate_bps: int, count: int, fee_cents: int, day_count: DayCount, frequency: Frequency, start_offset: int
) -> None:
    start = START + timedelta(days=start_offset)
    plan = InstallmentPlan(count, frequency, day_count)
    principal = D(cents).scaleb(-2)
    fee = (principal * fee_cents / 100).quantize(D("0.01"), rounding="ROUND_DOWN")
    terms = LoanTerms(principal, "USDC", 6, rate_bps, installment_term_days(start, plan), fee, start, plan)
    try:
        disclosure: Disclosure | None = disclose(terms)
    except ComplianceInputError:
        disclosure = None
    if disclosure is None:
        # refused: only terms whose equal installments on the cent would end in a balloon (rounding policy 4-5), by
        # the policy worked out again in exact fractions
        fractions = periods(start.date(), plan.due_dates(start.date()), day_count)
        regular = half_up(exact_level_payment(Fraction(principal), rate_bps, fractions))
        last = last_installment(Fraction(principal), rate_bps, fractions, regular)
        if last <= 0:
            regular -= CENT
            last = last_installment(Fraction(principal), rate_bps, fractions, regular)
        assert count > 1
        assert not 0 < last <= 2 * regular
        return
    rows = disclosure.payments
    assert sum((r.principal for r in rows), D(0)) == principal
    assert disclosure.total_of_payments == disclosure.amount_financed + disclosure.finance_charge
    assert disclosure.amount_financed == principal - fee
    assert all(r.amount == r.principal + r.interest for r in rows)
    assert all(r.amount == rows[0].amount for r in rows[:-1])
    assert 0 < rows[-1].amount <= 2 * rows[0].amount  # no balloon payment in equal installments
    # the balance ends at zero: re-run the schedule and look at the last balance
    raw = amortize(principal, rate_bps, start.date(), [r.due for r in rows], day_count)
    assert raw[-1].balance_after == 0
    if fee == 0:
        assert sum((r.principal for r in rows), D(0)) == disclosure.amount_financed


def test_single_payment_matches_the_contract_accrual() -> None:
    terms = LoanTerms(D("1000"), "USDC", 6, 1200, 30, D("10"), START)
    # 1000e6 * 1200 * 30 * 86400 / (10000 * 365 * 86400) = 9863013.69... base units, rounded up
    assert single_payment_interest(10**9, 1200, 30 * 86_400) == 9_863_014
    d = disclose(terms)
    assert d.finance_charge == D("19.863014")
    assert d.amount_financed == D("990")
    assert d.total_of_payments == D("1009.863014")
    # a 30-day term is its own unit-period: APR = (1009.863014 / 990 - 1) * 365 / 30
    expected = (D("1009.863014") / D("990") - 1) * D(365) / D(30) * 100
    assert abs(d.apr_percent - expected) < D("0.005")
    assert d.apr_percent == D("24.41")
    assert d.maturity == START + timedelta(days=30)


def test_single_payment_eighteen_decimals_exact() -> None:
    terms = LoanTerms(D("2.5"), "WETH", 18, 750, 365, D(0), START)
    d = disclose(terms)
    assert d.finance_charge == D("0.1875")  # a full 365-day year at 7.5%
    assert d.apr_percent == D("7.50")


def test_terms_hash_is_keccak_of_rfc8785_json() -> None:
    d = disclose(LoanTerms(D("1000"), "USDC", 6, 1200, 30, D("10"), START))
    raw = d.to_canonical_json()
    parsed = json.loads(raw)
    assert list(parsed) == sorted(parsed)  # RFC 8785 sorts keys
    assert b" " not in raw.replace(b"T00:00:00Z", b"").replace(CONTRACT_REFERENCE.encode(), b"")
    assert parsed["annualPercentageRate"] == "24.41"
    assert d.terms_hash() == keccak(raw)
    assert len(d.terms_hash()) == 32
    # pinned: a change in the disclosure's canonical form changes every offer's termsHash (schema /2, with the
    # 1026.18(k)-(m) statements, changed it on 2026-11-28)
    assert d.terms_hash().hex() == "f2016ff0d19a21c8afdd74b5abb74b2ceaf94f5a3220b5578210f839a6284550"
    other = disclose(LoanTerms(D("1000"), "USDC", 6, 1201, 30, D("10"), START))
    assert other.terms_hash() != d.terms_hash()


def test_the_disclosure_states_prepayment_late_payment_and_the_security_interest() -> None:
    """12 CFR 1026.18(k), (l), (m) and (p): no prepayment penalty and no refund of the origination fee, no late
    charge, the collateral the loan is secured by, and where the rest of the terms are. A loan secured by another
    amount of collateral is another disclosure, with another termsHash."""
    secured = LoanTerms(
        D("1000"), "USDC", 6, 1200, 30, D("10"), START, security_interest=SecurityInterest("WETH", D("1.50"))
    )
    document = disclose(secured).to_dict()
    assert document["prepayment"] == {"penalty": False, "prepaidFinanceChargesRefunded": False}
    assert document["latePayment"] == {"charge": False}
    assert document["securityInterest"] == {"asset": "WETH", "amount": "1.5"}
    assert document["contractReference"] == CONTRACT_REFERENCE
    assert document["schema"] == "creditmesh.tila-disclosure/2"
    more = LoanTerms(D("1000"), "USDC", 6, 1200, 30, D("10"), START, security_interest=SecurityInterest("WETH", D("2")))
    assert disclose(more).terms_hash() != disclose(secured).terms_hash()
    assert disclose(LoanTerms(D("1000"), "USDC", 6, 1200, 30, D("10"), START)).to_dict()["securityInterest"] is None
    with pytest.raises(ComplianceInputError, match="must be positive"):
        SecurityInterest("WETH", D("0"))


def test_mapr_counts_more_than_the_apr() -> None:
    base = LoanTerms(D("1000"), "USDC", 6, 3000, 180, D("20"), START)
    insured = LoanTerms(
        D("1000"),
        "USDC",
        6,
        3000,
        180,
        D("20"),
        START,
        mapr_charges=(MaprCharge(MaprChargeKind.CREDIT_INSURANCE, D("40")),),
    )
    assert disclose(insured).apr_percent == disclose(base).apr_percent
    assert mapr_percent(insured) > mapr_percent(base) + D("4")
    assert abs(mapr_percent(base) - disclose(base).apr_percent) < D("0.005")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"principal": D("1.0000001")}, "base units"),
        ({"origination_fee": D("1000")}, "less than the principal"),
        ({"term_days": 0}, "term_days"),
        ({"start": datetime(2026, 1, 1)}, "aware"),
        ({"installments": InstallmentPlan(12)}, "installment_term_days"),
    ],
)
def test_bad_terms_are_refused(kwargs: dict[str, object], message: str) -> None:
    values: dict[str, object] = {
        "principal": D("1000"),
        "asset": "USDC",
        "asset_decimals": 6,
        "rate_bps": 1200,
        "term_days": 30,
        "origination_fee": D("10"),
        "start": START,
    }
    values.update(kwargs)
    with pytest.raises(ComplianceInputError, match=message):
        LoanTerms(**values)  # type: ignore[arg-type]


def test_installment_apr_equals_note_rate_without_fee_on_a_30_360_monthly_loan() -> None:
    plan = InstallmentPlan(24, Frequency.MONTHLY, DayCount.THIRTY_360)
    d = disclose(LoanTerms(D("5000.00"), "USDC", 6, 900, installment_term_days(START, plan), D(0), START, plan))
    assert d.apr_percent == D("9.00")
    flows = [CashFlow(p.amount, p.number) for p in d.payments]
    assert abs(actuarial_apr([CashFlow(D("5000"), 0)], flows, 12) - 9) < D("0.01")
