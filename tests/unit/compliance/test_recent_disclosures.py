"""Kept disclosures are exactly the disclosures made afresh: the same fields, canonical JSON and termsHash on random
terms (single payment and installments, decimals of every exponent), given again only for terms exactly alike, and
never kept for terms of another shape (a start in another time zone, a plan's enum as a plain string)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.errors import ComplianceInputError
from compliance.tila.disclosure import (
    Disclosure,
    Frequency,
    InstallmentPlan,
    LoanTerms,
    SecurityInterest,
    disclose,
    installment_term_days,
)
from compliance.tila.recent import RecentDisclosures, terms_key
from compliance.tila.schedule import DayCount

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 27, 9, 30, 12, 345_678, tzinfo=UTC)


def _same(kept: Disclosure, fresh: Disclosure) -> None:
    assert kept == fresh
    assert kept.to_dict() == fresh.to_dict()
    assert kept.to_canonical_json() == fresh.to_canonical_json()
    assert kept.terms_hash() == fresh.terms_hash()
    assert kept.apr_unrounded == fresh.apr_unrounded


terms_strategy = st.builds(
    lambda cents, exponent, rate_bps, term_days, fee_bps, plan, seconds: (
        cents,
        exponent,
        rate_bps,
        term_days,
        fee_bps,
        plan,
        seconds,
    ),
    st.integers(100_00, 5_000_000_00),
    st.integers(2, 6),  # 1500.00 and 1500.000000 are the same amount, not the same terms
    st.integers(0, 40_000),
    st.integers(1, 365),
    st.integers(0, 1_000),
    st.one_of(
        st.none(),
        st.builds(
            InstallmentPlan,
            st.integers(1, 24),
            st.sampled_from(list(Frequency)),
            st.sampled_from(list(DayCount)),
        ),
    ),
    st.integers(0, 400 * 86_400),
)


def _terms(drawn: tuple[int, int, int, int, int, InstallmentPlan | None, int]) -> LoanTerms:
    cents, exponent, rate_bps, term_days, fee_bps, plan, seconds = drawn
    principal = (Decimal(cents) / 100).quantize(Decimal(1).scaleb(-exponent))
    fee = (principal * fee_bps / 10_000).quantize(Decimal("0.01")).quantize(Decimal(1).scaleb(-exponent))
    start = START + timedelta(seconds=seconds)
    if plan is not None:
        term_days = installment_term_days(start, plan)
    return LoanTerms(principal, "USDC", 6, rate_bps, term_days, fee, start, installments=plan)


@settings(max_examples=80, deadline=None)
@given(st.lists(terms_strategy, min_size=1, max_size=6))
def test_kept_disclosures_are_the_fresh_ones_on_random_terms(drawn: list[tuple[int, ...]]) -> None:
    recent = RecentDisclosures()
    terms = [_terms(d) for d in drawn]  # type: ignore[arg-type]
    refused = set()
    for _ in range(2):  # made, then given again
        for one in terms:
            try:
                fresh = disclose(one)
            except ComplianceInputError:  # terms no equal installment repays (a hidden balloon): refused, not kept
                with pytest.raises(ComplianceInputError):
                    recent.disclose(one)
                refused.add(terms_key(one))
                continue
            _same(recent.disclose(one), fresh)
    assert len(recent) == len({terms_key(one) for one in terms} - refused)


def test_the_same_terms_share_one_disclosure_and_different_exponents_do_not() -> None:
    recent = RecentDisclosures()
    terms = LoanTerms(Decimal("1500.00"), "USDC", 6, 805, 30, Decimal("15.00"), START)
    first = recent.disclose(terms)
    assert recent.disclose(LoanTerms(Decimal("1500.00"), "USDC", 6, 805, 30, Decimal("15.00"), START)) is first
    finer = LoanTerms(Decimal("1500.000000"), "USDC", 6, 805, 30, Decimal("15.000000"), START)
    assert recent.disclose(finer) is not first
    _same(recent.disclose(finer), disclose(finer))
    later = LoanTerms(Decimal("1500.00"), "USDC", 6, 805, 30, Decimal("15.00"), START + timedelta(microseconds=1))
    assert recent.disclose(later).start == later.start
    assert len(recent) == 3


def test_terms_of_another_shape_are_disclosed_afresh_and_not_kept() -> None:
    recent = RecentDisclosures()
    # the same instant five hours behind UTC: on the 26th there, so its payments fall on other dates
    eastern = datetime(2026, 11, 27, 3, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=-5)))
    plan = InstallmentPlan(3, Frequency.MONTHLY, DayCount.THIRTY_360)
    for start in (eastern, eastern.astimezone(UTC)):
        terms = LoanTerms(
            Decimal("900.00"), "USDC", 6, 1_200, installment_term_days(start, plan), Decimal(0), start, plan
        )
        _same(recent.disclose(terms), disclose(terms))
    assert len(recent) == 1  # the UTC one
    as_strings = InstallmentPlan(3, "monthly", "30/360", date(2026, 12, 20))  # type: ignore[arg-type]
    terms = LoanTerms(
        Decimal("900.00"), "USDC", 6, 1_200, installment_term_days(START, as_strings), Decimal(0), START, as_strings
    )
    assert terms_key(terms) is None
    _same(recent.disclose(terms), disclose(terms))
    assert len(recent) == 1


def test_the_memo_is_bounded() -> None:
    recent = RecentDisclosures(capacity=4)
    for rate in range(10):
        recent.disclose(LoanTerms(Decimal("100.00"), "USDC", 6, 500 + rate, 30, Decimal(0), START))
        assert len(recent) <= 4


def test_every_field_of_the_terms_is_in_the_key_but_the_mapr_charges() -> None:
    """A field added to ``LoanTerms`` or ``InstallmentPlan`` must reach ``terms_key`` (or be named here as one the
    disclosure does not read): two terms differing in it would otherwise share one disclosure."""
    single = LoanTerms(Decimal("1500.00"), "USDC", 6, 1200, 90, Decimal("15.00"), START)
    other_terms: dict[str, Any] = {
        "principal": Decimal("1600.00"),
        "asset": "DAI",
        "asset_decimals": 18,
        "rate_bps": 1300,
        "term_days": 91,
        "origination_fee": Decimal("16.00"),
        "start": START + timedelta(seconds=1),
        "security_interest": SecurityInterest("WETH", Decimal("1.5")),
    }
    other_plan: dict[str, Any] = {
        "count": 4,
        "frequency": Frequency.BIWEEKLY,
        "day_count": DayCount.ACTUAL_365,
        "first_payment": date(2026, 12, 20),
        "balloon": Decimal("100.00"),
    }
    not_disclosed = {"mapr_charges"}
    assert {f.name for f in dataclasses.fields(LoanTerms)} == set(other_terms) | {"installments"} | not_disclosed
    assert {f.name for f in dataclasses.fields(InstallmentPlan)} == set(other_plan)

    def key(terms: LoanTerms, plan: InstallmentPlan | None = None) -> object:
        if plan is not None:
            days = installment_term_days(terms.start, plan)
            terms = dataclasses.replace(terms, term_days=days, installments=plan)
        found = terms_key(terms)
        assert found is not None
        return found

    for name, value in other_terms.items():
        assert key(dataclasses.replace(single, **{name: value})) != key(single), name
    plan = InstallmentPlan(count=3)
    assert key(single, plan) != key(dataclasses.replace(single, term_days=installment_term_days(START, plan)))
    for name, value in other_plan.items():
        assert key(single, dataclasses.replace(plan, **{name: value})) != key(single, plan), name
