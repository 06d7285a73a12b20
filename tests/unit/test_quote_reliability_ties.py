"""Reliability breaks ranking ties (DESIGN.md step 5): of two offers that cost the borrower the same, the one of the
provider whose recent calls failed less ranks first, whatever the providers' ids; the success ratio is this
process's window of each provider's calls (``HealthTracker``), as the resilience wrapper observes them."""

from __future__ import annotations

import pytest

from aggregator.quote_store import InMemoryQuotingStore
from compliance import ComplianceService
from providers._exceptions import ProviderServerError
from providers._health import HealthTracker
from providers.models import Decline, ProviderKind, ProviderOffer, QuoteRequest
from providers.policy import ResiliencePolicy
from tests.support.quoting import SPEC, FixedRateLender, borrower_file, quoting_service, shipped_compliance
from tests.unit.providers.fakes import REQUEST, wrapped

pytestmark = pytest.mark.unit


class FlakyLender(FixedRateLender):
    """Answers with a 503 its first ``failures`` quote calls, then with its rates."""

    def __init__(self, provider_id: str, rates: list[int], failures: int) -> None:
        super().__init__(provider_id, ProviderKind.TRADITIONAL, rates)
        self.failures = failures

    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        if self.failures > 0:
            self.failures -= 1
            raise ProviderServerError(f"{self.provider_id}: 503", 503)
        return await super().quote(request)


@pytest.fixture(scope="module")
def compliance() -> ComplianceService:
    return shipped_compliance()


def test_the_success_ratio_is_the_windows() -> None:
    tracker = HealthTracker(window=4)
    assert tracker.success_ratio() is None
    for ok in (False, False, True, True):
        tracker.observe(1.0, ok)
    assert tracker.success_ratio() == 0.5
    tracker.observe(1.0, True)
    tracker.observe(1.0, True)  # both failures have left the window
    assert tracker.success_ratio() == 1.0
    tracker.observe(1.0, False)
    assert tracker.success_ratio() == 0.75


async def test_the_more_reliable_provider_wins_a_tie_of_cost(compliance: ComplianceService) -> None:
    policy = ResiliencePolicy(quote_attempts=1, fail_max=100)
    # "alpha" would win the tie by its id: its recent calls failed
    alpha = await wrapped(FlakyLender("alpha-bank", [700], failures=3), policy)
    beta = await wrapped(FlakyLender("beta-bank", [700], failures=0), policy)
    for _ in range(3):
        with pytest.raises(ProviderServerError):
            await alpha.quote(REQUEST)
    assert await beta.quote(REQUEST)

    quoted = await quoting_service(InMemoryQuotingStore(), compliance, more=[alpha, beta]).request_credit(
        borrower_file(), SPEC
    )

    assert alpha.tracker.success_ratio() == 0.25
    assert beta.tracker.success_ratio() == 1.0
    first, second = quoted.quotes[0], quoted.quotes[1]
    assert first.disclosure["financeCharge"] == second.disclosure["financeCharge"]
    assert [first.provider_id, second.provider_id] == ["beta-bank", "alpha-bank"]
