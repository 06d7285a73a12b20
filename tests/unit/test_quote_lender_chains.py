"""A lender's declared chains (``Capabilities.chains``): it is asked only when one of them is among the request's,
and its offer is signed on the first requested chain it lends on; a lender that declared none is asked for every
request and its offer placed on the first requested chain, as before."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aggregator.quote_store import InMemoryQuotingStore
from compliance import ComplianceService
from providers.models import Capabilities, ProviderKind
from tests.support.quoting import SPEC, FixedRateLender, borrower_file, quoting_service, shipped_compliance
from tests.unit.providers.fakes import REQUEST

pytestmark = pytest.mark.unit


class PolygonLender(FixedRateLender):
    """A bank that lends on polygon-local only."""

    def capabilities(self) -> Capabilities:
        return Capabilities(assets=frozenset({"USDC"}), chains=frozenset({"polygon-local"}))


@pytest.fixture(scope="module")
def compliance() -> ComplianceService:
    return shipped_compliance()


def test_a_lender_is_eligible_only_on_a_chain_it_declared() -> None:
    polygon = Capabilities(assets=frozenset({"USDC"}), chains=frozenset({"polygon-local"}))
    reason = polygon.accepts(replace(REQUEST, chains=("ethereum-local",)))
    assert reason == "lends on polygon-local, none of the requested chains"
    assert polygon.accepts(replace(REQUEST, chains=("ethereum-local", "polygon-local"))) is None
    assert Capabilities(assets=frozenset({"USDC"})).accepts(REQUEST) is None, "none declared: any chain"


async def test_a_lender_on_another_chain_is_not_asked(compliance: ComplianceService) -> None:
    service = quoting_service(
        InMemoryQuotingStore(), compliance, more=[PolygonLender("polygon-bank", ProviderKind.TRADITIONAL, [700])]
    )
    quoted = await service.request_credit(borrower_file(), replace(SPEC, preferred_chains=("ethereum-local",)))

    outcome = next(o for o in quoted.outcomes if o.provider_id == "polygon-bank")
    assert (outcome.outcome, outcome.detail) == ("ineligible", "lends on polygon-local, none of the requested chains")
    assert not [q for q in quoted.quotes if q.provider_id == "polygon-bank"]
    assert {q.chain_name for q in quoted.quotes} == {"ethereum-local"}


async def test_an_offer_goes_on_the_first_requested_chain_its_lender_lends_on(compliance: ComplianceService) -> None:
    service = quoting_service(
        InMemoryQuotingStore(), compliance, more=[PolygonLender("polygon-bank", ProviderKind.TRADITIONAL, [700])]
    )
    quoted = await service.request_credit(borrower_file(), SPEC)  # every chain, ethereum-local first

    placed = {q.provider_id: (q.chain_name, q.chain_id) for q in quoted.quotes if q.kind == "traditional"}
    assert placed["polygon-bank"] == ("polygon-local", 31338)
    assert placed["bank"] == ("ethereum-local", 31337), "no chains declared: the first requested chain"
    polygon_nonce = next(q.offer["nonce"] for q in quoted.quotes if q.chain_name == "polygon-local")
    assert all(q.offer["nonce"] == polygon_nonce for q in quoted.quotes if q.chain_name == "polygon-local")
