"""An adapter's offers are signed only when they are its own offers for what was asked (``aggregator.offer_checks``):
an offer under another provider's id, for another principal, asset or term, or naming a pool that is not its
provider's own, is dropped with the reason in its provider's outcome, and never signed."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from aggregator.quote_store import InMemoryQuotingStore, QuotedRequest
from compliance import ComplianceService
from providers.base import ProviderAdapter
from providers.models import Decline, ProviderKind, ProviderOffer, QuoteRequest
from tests.support.quoting import SPEC, FixedRateLender, borrower_file, quoting_service, shipped_compliance

pytestmark = pytest.mark.unit

POOL_CHAIN = "ethereum-local"


@pytest.fixture(scope="module")
def compliance() -> ComplianceService:
    return shipped_compliance()


class Rogue(FixedRateLender):
    """A plugin whose offers are rewritten by ``change`` (each offer, its index)."""

    def __init__(self, provider_id: str, kind: ProviderKind, rates: list[int], change: dict[int, dict[str, object]]):
        super().__init__(provider_id, kind, rates, chain=POOL_CHAIN if kind is ProviderKind.POOL else None)
        self._change = change

    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        offers = await super().quote(request)
        assert isinstance(offers, list)
        return [replace(o, **self._change.get(i, {})) for i, o in enumerate(offers)]  # type: ignore[arg-type]


async def _quote(compliance: ComplianceService, rogue: ProviderAdapter) -> QuotedRequest:
    return await quoting_service(InMemoryQuotingStore(), compliance, more=[rogue]).request_credit(borrower_file(), SPEC)


def _outcome(quoted: QuotedRequest, provider_id: str) -> tuple[str, str]:
    found = next(o for o in quoted.outcomes if o.provider_id == provider_id)
    return found.outcome, found.detail


async def test_an_offer_under_another_providers_id_for_ten_times_the_principal_is_never_signed(
    compliance: ComplianceService,
) -> None:
    asked = 1_500 * 10**6  # SPEC: 1500.00 USDC
    under_bank = {"provider_id": "bank", "principal": asked * 10}
    rogue = Rogue("rogue-plugin", ProviderKind.TRADITIONAL, [500], {0: under_bank})
    quoted = await _quote(compliance, rogue)

    assert {int(q.offer["principal"]) for q in quoted.quotes} == {asked}, "every signed offer is for the principal"
    assert not [q for q in quoted.quotes if q.offer["rateBps"] == 500], "the rogue offer is not ranked or signed"
    assert sorted(q.offer["providerRef"] for q in quoted.quotes if q.provider_id == "bank") == ["bank-1100", "bank-900"]
    outcome, detail = _outcome(quoted, "rogue-plugin")
    assert outcome == "dropped"
    assert "the offer names provider 'bank', not 'rogue-plugin'" in detail
    assert _outcome(quoted, "bank")[0] == "offered"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"principal": 1}, "the offer's principal 1 is not the 1500000000 asked (base units)"),
        ({"asset": "WETH"}, "the offer lends WETH, not the USDC asked"),
        ({"term_days": 365}, "the offer's term of 365 days is not the 30 asked"),
        (
            {"kind": ProviderKind.POOL, "chain": POOL_CHAIN},
            "a pool offer from a provider that is not a registered pool",
        ),
    ],
)
async def test_an_offer_not_for_what_was_asked_is_dropped_and_its_siblings_kept(
    compliance: ComplianceService, change: dict[str, object], reason: str
) -> None:
    quoted = await _quote(compliance, Rogue("plugin", ProviderKind.TRADITIONAL, [700, 710], {1: change}))

    assert [q.offer["providerRef"] for q in quoted.quotes if q.provider_id == "plugin"] == ["plugin-700"]
    outcome, detail = _outcome(quoted, "plugin")
    assert outcome == "offered", "one offer of it was kept"
    assert detail == f"1 offer(s); offer 'plugin-710' dropped: {reason}"


async def test_a_pool_offer_naming_another_pool_is_dropped(compliance: ComplianceService) -> None:
    other = "0x" + "ab" * 20
    quoted = await _quote(compliance, Rogue("pool:plugin", ProviderKind.POOL, [600, 610], {0: {"pool_address": other}}))

    assert [q.offer["providerRef"] for q in quoted.quotes if q.provider_id == "pool:plugin"] == ["pool:plugin-610"]
    assert all(q.offer["pool"].lower() != other for q in quoted.quotes)
    outcome, detail = _outcome(quoted, "pool:plugin")
    assert outcome == "offered"
    assert f"the pool offer names pool {other} on {POOL_CHAIN}, not its own" in detail


async def test_a_pool_answering_a_lenders_offer_is_dropped(compliance: ComplianceService) -> None:
    change: dict[int, dict[str, object]] = {0: {"kind": ProviderKind.TRADITIONAL, "pool_address": None}}
    quoted = await _quote(compliance, Rogue("pool:odd", ProviderKind.POOL, [600], change))

    assert not [q for q in quoted.quotes if q.provider_id == "pool:odd"]
    assert _outcome(quoted, "pool:odd") == ("dropped", "offer 'pool:odd-600' dropped: a lender's offer from a pool")
    assert Decimal(quoted.request.amount) == Decimal("1500.00")
