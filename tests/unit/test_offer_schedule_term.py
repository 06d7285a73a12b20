"""An amortizing offer is held to the term the borrower asked for (``aggregator.offer_terms.schedule_past_term``):
its schedule's last due date becomes the term disclosed and signed, so a schedule running past the term asked (more
than ``TERM_ALLOWANCE_DAYS``, the calendar's rounding of whole periods) is dropped before it is disclosed, its length
and the term asked named in the provider's outcome. Before, a lender answering a 30-day request with 36 monthly
installments had its loan signed for 1,096 days, past the platform's longest term (365), on a term risk never scored;
a lender's honest schedule for the term (12 monthly installments for 365 days) is kept from any start."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from aggregator.offer_terms import TERM_ALLOWANCE_DAYS, schedule_past_term
from aggregator.quote_pipeline import MAX_TERM_DAYS
from aggregator.quote_store import InMemoryQuotingStore, QuotedRequest
from compliance import ComplianceService
from providers.models import (
    Decline,
    InstallmentSchedule,
    PaymentFrequency,
    ProviderKind,
    ProviderOffer,
    QuoteRequest,
    RepaymentShape,
)
from providers.sim.installments import PERIOD_DAYS
from tests.support.quoting import SPEC, FixedRateLender, borrower_file, quoting_service, shipped_compliance

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 29, 12, tzinfo=UTC)
OFFER = ProviderOffer(
    provider_id="bank",
    kind=ProviderKind.TRADITIONAL,
    asset="USDC",
    principal=1_500 * 10**6,
    rate_bps=1_500,
    origination_fee=0,
    term_days=30,
    repayment=RepaymentShape.INSTALLMENTS,
    installments=36,
    expires_at=START + timedelta(minutes=10),
    provider_ref="bank-1500",
    schedule=InstallmentSchedule(),
)
#: every start of a leap-year cycle: month ends, 29 February and the months of 28 to 31 days all come round
STARTS = [datetime(2024, 1, 1, 9, tzinfo=UTC) + timedelta(days=day) for day in range(4 * 365 + 1)]


def _installments(count: int, frequency: PaymentFrequency = "monthly", first_due: date | None = None) -> ProviderOffer:
    return replace(OFFER, installments=count, schedule=InstallmentSchedule(frequency, first_due=first_due))


def test_a_schedule_longer_than_the_term_asked_is_past_it_its_length_and_the_term_named() -> None:
    assert schedule_past_term(OFFER, START, 30) == (
        "the schedule of 36 monthly installments runs 1,096 days (to 2029-11-29), longer than the 30-day term asked "
        "(7 days allowed past it for the calendar)"
    )
    assert schedule_past_term(_installments(2), START, 30) is not None, "a month more than asked"
    assert schedule_past_term(_installments(13), START, 365) is not None
    assert schedule_past_term(_installments(3, "biweekly"), START, 30) is not None, "a fortnight more than asked"


def test_a_single_payment_has_the_term_asked() -> None:
    single = replace(OFFER, repayment=RepaymentShape.SINGLE, installments=1, schedule=None)
    assert schedule_past_term(single, START, 30) is None


def test_an_odd_first_period_counts_as_the_schedule_is_signed() -> None:
    """Twelve monthly installments the first 45 days out end 379 days on: not the 365 days asked."""
    late_first = (START + timedelta(days=45)).date()
    assert schedule_past_term(_installments(11, first_due=late_first), START, 365) is None
    reason = schedule_past_term(_installments(12, first_due=late_first), START, 365)
    assert reason is not None
    assert "runs 379 days (to 2027-12-13)" in reason


def test_no_schedule_signed_runs_past_the_longest_term_quoted_by_more_than_the_allowance() -> None:
    """Every term asked is within ``MAX_TERM_DAYS``: from any start, twelve monthly installments for it are kept
    (365 or 366 days) and a thirteenth, a fifth quarter or a 27th fortnight is past it."""
    for start in STARTS:
        assert schedule_past_term(_installments(12), start, MAX_TERM_DAYS) is None, start
        for longer in (_installments(13), _installments(5, "quarterly"), _installments(27, "biweekly")):
            assert schedule_past_term(longer, start, MAX_TERM_DAYS) is not None, (start, longer.schedule)
    assert MAX_TERM_DAYS + TERM_ALLOWANCE_DAYS == 372


@pytest.mark.parametrize("frequency", sorted(PERIOD_DAYS))
def test_a_lenders_honest_schedule_for_the_term_asked_is_kept_from_any_start(frequency: PaymentFrequency) -> None:
    """Whole periods fitted into the term (a month counted as 30 days, half a month 15, a quarter 91, as
    ``providers.sim.installments`` counts them) end at most 7 days past it: eleven monthly installments for 330 days
    from 29 February 2024 end 337 days on (31 January, a month-end series). The shortest term holding ``n`` periods
    is where the calendar runs furthest past it, so those terms (and the longest, 365) are the ones checked."""
    period = PERIOD_DAYS[frequency]
    terms = sorted({period * n for n in range(1, MAX_TERM_DAYS // period + 1)} | {MAX_TERM_DAYS})
    # weekly and biweekly due dates are days apart: where the year starts does not move them (a year of starts)
    starts = STARTS if frequency in ("monthly", "semimonthly", "quarterly") else STARTS[:366]
    for start in starts:
        for term in terms:
            offer = _installments(term // period, frequency)
            assert schedule_past_term(offer, start, term) is None, (start, term)
            # and with an odd first period (a day; a period and a half), then whole periods after it
            for first_days in (1, period + period // 2):
                if first_days <= term:
                    count = 1 + (term - first_days) // period
                    odd = _installments(count, frequency, (start + timedelta(days=first_days)).date())
                    assert schedule_past_term(odd, start, term) is None, (start, term, first_days)


def test_the_allowance_is_the_calendars_furthest_run_past_the_term() -> None:
    """Eleven monthly installments from 29 February 2024 fall on the months' last days (Appendix J (b)(3)(iv)), the
    last on 31 January 2025: 337 days, 7 past the 330 days that hold eleven 30-day months. A day more is past it."""
    leap_day = datetime(2024, 2, 29, 9, tzinfo=UTC)
    assert schedule_past_term(_installments(11), leap_day, 330) is None
    reason = schedule_past_term(_installments(11), leap_day, 329)
    assert reason is not None
    assert "runs 337 days (to 2025-01-31), longer than the 329-day term asked" in reason


class Amortizing(FixedRateLender):
    """Its offers repaid in the ``schedules`` (installments, frequency), one per rate in order."""

    def __init__(self, provider_id: str, rates: list[int], schedules: list[tuple[int, PaymentFrequency]]) -> None:
        super().__init__(provider_id, ProviderKind.TRADITIONAL, rates)
        self._schedules = schedules

    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        offers = await super().quote(request)
        assert isinstance(offers, list)
        return [
            replace(o, repayment=RepaymentShape.INSTALLMENTS, installments=n, schedule=InstallmentSchedule(frequency))
            for o, (n, frequency) in zip(offers, self._schedules, strict=True)
        ]


@pytest.fixture(scope="module")
def compliance() -> ComplianceService:
    return shipped_compliance()


async def _quote(compliance: ComplianceService, lender: Amortizing, term_days: int = 30) -> QuotedRequest:
    return await quoting_service(InMemoryQuotingStore(), compliance, more=[lender]).request_credit(
        borrower_file(), replace(SPEC, term_days=term_days)
    )


def _within_a_day(detail: str) -> str:
    """``detail`` with its schedule's length and last due date (36 months from today: 1,095 or 1,096 days) elided."""
    return re.sub(r"runs 1,09[56] days \(to \d{4}-\d{2}-\d{2}\)", "runs 1,09x days (to ...)", detail)


async def test_an_offer_of_36_monthly_installments_on_a_30_day_request_is_dropped_and_named(
    compliance: ComplianceService,
) -> None:
    quoted = await _quote(compliance, Amortizing("longer", [1_500], [(36, "monthly")]))

    assert quoted.request.term_days == 30
    assert not [q for q in quoted.quotes if q.provider_id == "longer"], "never disclosed nor signed"
    outcome = next(o for o in quoted.outcomes if o.provider_id == "longer")
    assert outcome.outcome == "dropped"
    assert _within_a_day(outcome.detail) == (
        "dropped: the schedule of 36 monthly installments runs 1,09x days (to ...), longer than the 30-day term "
        "asked (7 days allowed past it for the calendar)"
    )
    assert quoted.quotes, "the other lenders' offers for the term asked are quoted"
    assert all(int(q.offer["term"]) == 30 * 86_400 for q in quoted.quotes)


async def test_a_schedule_on_the_term_asked_is_kept_beside_one_dropped(compliance: ComplianceService) -> None:
    quoted = await _quote(compliance, Amortizing("mixed", [1_500, 1_400], [(36, "monthly"), (1, "monthly")]))

    (kept,) = [q for q in quoted.quotes if q.provider_id == "mixed"]
    assert kept.offer["providerRef"] == "mixed-1400"
    assert 28 <= kept.disclosure["termDays"] <= 31, "one month from today"
    assert int(kept.offer["term"]) == kept.disclosure["termDays"] * 86_400
    outcome = next(o for o in quoted.outcomes if o.provider_id == "mixed")
    assert outcome.outcome == "offered"
    assert _within_a_day(outcome.detail) == (
        "1 offer(s); offer 'mixed-1500' dropped: the schedule of 36 monthly installments runs 1,09x days (to ...), "
        "longer than the 30-day term asked (7 days allowed past it for the calendar)"
    )


async def test_twelve_monthly_installments_for_a_year_are_quoted(compliance: ComplianceService) -> None:
    quoted = await _quote(compliance, Amortizing("yearly", [1_500], [(12, "monthly")]), term_days=365)

    (quote,) = [q for q in quoted.quotes if q.provider_id == "yearly"]
    assert len(quote.disclosure["payments"]) == 12
    assert quote.disclosure["termDays"] in (365, 366), "a year from today"
    outcome = next(o for o in quoted.outcomes if o.provider_id == "yearly")
    assert (outcome.outcome, outcome.detail) == ("offered", "1 offer(s)")
