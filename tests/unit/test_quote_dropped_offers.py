"""A provider's outcome when disclosure drops some of its offers (``aggregator.quote_offers.disclose``): ``dropped``
only when none is kept, its detail naming why; otherwise ``offered``, its detail naming each offer dropped. Before,
one dropped offer marked the whole outcome dropped though the provider's other offers were quoted."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aggregator.quote_store import InMemoryQuotingStore, QuotedRequest
from compliance import ComplianceService
from providers.models import Decline, InstallmentSchedule, ProviderKind, ProviderOffer, QuoteRequest, RepaymentShape
from tests.support.quoting import SPEC, FixedRateLender, borrower_file, quoting_service, shipped_compliance

pytestmark = pytest.mark.unit

#: 600 quarterly installments: 150 years, past the longest schedule disclosed (``MAX_SCHEDULE_YEARS``)
TOO_LONG = {
    "repayment": RepaymentShape.INSTALLMENTS,
    "installments": 600,
    "schedule": InstallmentSchedule(frequency="quarterly"),
}


class TooLong(FixedRateLender):
    """Its offers at the positions ``long`` have a schedule longer than any disclosed."""

    def __init__(self, provider_id: str, rates: list[int], long: set[int]) -> None:
        super().__init__(provider_id, ProviderKind.TRADITIONAL, rates)
        self._long = long

    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        offers = await super().quote(request)
        assert isinstance(offers, list)
        return [replace(o, **TOO_LONG) if i in self._long else o for i, o in enumerate(offers)]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def compliance() -> ComplianceService:
    return shipped_compliance()


async def _quote(compliance: ComplianceService, lender: TooLong) -> QuotedRequest:
    return await quoting_service(InMemoryQuotingStore(), compliance, more=[lender]).request_credit(
        borrower_file(), SPEC
    )


async def test_one_offer_dropped_leaves_the_outcome_offered_naming_it(compliance: ComplianceService) -> None:
    quoted = await _quote(compliance, TooLong("mixed", [700, 710], {1}))

    assert [q.offer["providerRef"] for q in quoted.quotes if q.provider_id == "mixed"] == ["mixed-700"]
    outcome = next(o for o in quoted.outcomes if o.provider_id == "mixed")
    assert outcome.outcome == "offered", "its other offer was quoted"
    assert outcome.detail.startswith("1 offer(s); offer 'mixed-710' dropped: ")
    assert "runs 150.0 years" in outcome.detail
    assert outcome.detail.endswith("longer than the maximum of 40 years (480 monthly installments)")


async def test_every_offer_dropped_makes_the_outcome_dropped_with_each_reason(compliance: ComplianceService) -> None:
    quoted = await _quote(compliance, TooLong("long", [700, 710], {0, 1}))

    assert not [q for q in quoted.quotes if q.provider_id == "long"]
    outcome = next(o for o in quoted.outcomes if o.provider_id == "long")
    assert outcome.outcome == "dropped"
    assert outcome.detail.startswith("offer 'long-700' dropped: ")
    assert "; offer 'long-710' dropped: " in outcome.detail


async def test_a_lone_offer_dropped_keeps_its_reason_as_the_detail(compliance: ComplianceService) -> None:
    quoted = await _quote(compliance, TooLong("alone", [700], {0}))

    outcome = next(o for o in quoted.outcomes if o.provider_id == "alone")
    assert outcome.outcome == "dropped"
    assert outcome.detail.startswith("dropped: "), "as before: the one reason"
