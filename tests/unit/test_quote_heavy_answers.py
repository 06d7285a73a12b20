"""A lender answering many installments does not hold the event loop (``aggregator.quote_pipeline``): an answer of
``OFFLOAD_INSTALLMENTS`` or more is disclosed in a worker thread, and past ``MAX_INSTALLMENTS_PER_ANSWER`` its later
offers are dropped, the reason named. Before, one lender answering 20 offers of 600 installments was disclosed on the
event loop: about 0.6 s of it per credit request, every other request of the process waiting."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest

from aggregator import quote_offers, quote_pipeline
from aggregator.offer_checks import MAX_INSTALLMENTS_PER_ANSWER
from aggregator.quote_store import InMemoryQuotingStore
from compliance import ComplianceService
from providers.models import Decline, InstallmentSchedule, ProviderKind, ProviderOffer, QuoteRequest, RepaymentShape
from tests.support.quoting import SPEC, FixedRateLender, borrower_file, quoting_service, shipped_compliance

pytestmark = pytest.mark.unit


#: a year's request: an offer may have as many installments as fit in the term asked (52 weekly ones in 365 days)
YEAR = replace(SPEC, term_days=365)


class Amortizing(FixedRateLender):
    """Each offer repaid in ``installments`` weekly installments."""

    def __init__(self, provider_id: str, rates: list[int], installments: int) -> None:
        super().__init__(provider_id, ProviderKind.TRADITIONAL, rates)
        self._installments = installments

    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        offers = await super().quote(request)
        assert isinstance(offers, list)
        schedule = InstallmentSchedule(frequency="weekly")
        shape = RepaymentShape.INSTALLMENTS
        return [replace(o, repayment=shape, installments=self._installments, schedule=schedule) for o in offers]


@pytest.fixture(scope="module")
def compliance() -> ComplianceService:
    return shipped_compliance()


async def test_a_heavy_answer_is_disclosed_off_the_event_loop(
    compliance: ComplianceService, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: dict[str, set[int]] = {}
    real = quote_offers.disclose

    def spied(*args: Any) -> Any:
        for outcome in args[4]:
            threads.setdefault(outcome.provider_id, set()).add(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(quote_pipeline, "disclose", spied)
    heavy = Amortizing("heavy", [900 + i for i in range(6)], 52)  # 312 installments
    service = quoting_service(InMemoryQuotingStore(), compliance, more=[heavy])
    quoted = await service.request_credit(borrower_file(), YEAR)

    loop = threading.get_ident()
    assert threads["bank"] == {loop}, "a light answer is disclosed on the event loop, as it comes"
    assert loop not in threads["heavy"], "the heavy answer is disclosed in a worker thread"
    assert sorted(q.offer["providerRef"] for q in quoted.quotes if q.provider_id == "heavy") == [
        f"heavy-{900 + i}" for i in range(6)
    ], "its offers disclosed, ranked and signed all the same"
    assert all(q.offer_signature.startswith("0x") for q in quoted.quotes)


async def test_installments_past_the_answers_maximum_are_dropped_and_named(compliance: ComplianceService) -> None:
    per_offer = 52
    fitting = MAX_INSTALLMENTS_PER_ANSWER // per_offer
    heavy = Amortizing("heavy", [900 + i for i in range(fitting + 2)], per_offer)
    quoted = await quoting_service(InMemoryQuotingStore(), compliance, more=[heavy]).request_credit(
        borrower_file(), YEAR
    )

    kept = sorted(q.offer["providerRef"] for q in quoted.quotes if q.provider_id == "heavy")
    assert kept == sorted(f"heavy-{900 + i}" for i in range(fitting)), "the lender's first offers, in its order"
    outcome = next(o for o in quoted.outcomes if o.provider_id == "heavy")
    assert outcome.outcome == "offered"
    past = f"past the {MAX_INSTALLMENTS_PER_ANSWER} installments disclosed of one answer"
    assert f"offer 'heavy-{900 + fitting}' dropped: {past}" in outcome.detail
    assert f"offer 'heavy-{901 + fitting}' dropped: {past}" in outcome.detail
