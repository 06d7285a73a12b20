"""The simulated lender's offers expire as a lender's do (in process, over httpx's ASGI transport, through the
Provider Quote Protocol adapter): a reservation or a one-phase accept past the offer's expiry is refused naming it, an
offer nobody holds is forgotten a while after it expired (so a lender quoting for days keeps only its live offers and
its loans'), and the one-phase accept takes an offer once: not one unknown, reserved or funded under another key."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx
import pytest

from providers.http_lender import HttpLenderAdapter
from providers.models import Capabilities, Decline, ProviderOffer
from providers.sim.fleet import LatencySpec, SimLender
from providers.sim.lender import FORGET_EXPIRED_AFTER_SECONDS, create_sim_app
from tests.unit.providers.fakes import REQUEST

pytestmark = pytest.mark.unit

SECRET = "sim-unit-secret"
TTL = 60


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))  # whole seconds: expiries compare exactly

    def __call__(self) -> float:
        return self.now


def _lender(clock: Clock) -> tuple[HttpLenderAdapter, httpx.AsyncClient]:
    lender = SimLender(lender_id="sim-bank", secret=SECRET, offer_ttl_seconds=TTL, latency=LatencySpec(ms=0))
    app = create_sim_app([lender], clock=clock)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim.test")
    adapter = HttpLenderAdapter(
        "sim-bank", "http://sim.test/lenders/sim-bank", SECRET, Capabilities(assets=frozenset({"USDC"})), client
    )
    return adapter, client


async def _offer(adapter: HttpLenderAdapter) -> ProviderOffer:
    offers = await adapter.quote(REQUEST)
    assert not isinstance(offers, Decline)
    return offers[0]


async def _known(client: httpx.AsyncClient) -> dict[str, str]:
    known: dict[str, str] = (await client.get("/control/lenders/sim-bank")).json()["offers"]
    return known


async def test_an_expired_offer_is_refused_then_forgotten_and_a_held_one_is_kept() -> None:
    clock = Clock()
    adapter, client = _lender(clock)
    held, cancelled, late, unasked = [await _offer(adapter) for _ in range(4)]
    assert (await adapter.reserve(held, "q-1:1")).funded
    assert (await adapter.reserve(cancelled, "q-2:1")).funded
    assert (await adapter.cancel(cancelled.provider_ref, "q-2:1")).funded

    clock.now += TTL + 1
    refused = await adapter.reserve(late, "q-3:1")
    assert not refused.funded
    assert f"refuses {late.provider_ref}: the offer expired at " in refused.detail
    assert (await _known(client))[late.provider_ref] == "offered", "refused, still known"

    clock.now += FORGET_EXPIRED_AFTER_SECONDS
    fresh = await _offer(adapter)  # a quote is when the lender forgets
    assert await _known(client) == {held.provider_ref: "reserved", fresh.provider_ref: "offered"}
    assert not (await adapter.reserve(unasked, "q-4:1")).funded, "a forgotten offer is not reserved (404)"
    assert (await adapter.fund(held.provider_ref, "q-1:1", 31337, "0x" + "ab" * 32)).funded, "a held offer is kept"


async def test_a_lender_quoting_for_hours_keeps_only_the_offers_still_known() -> None:
    clock = Clock()
    adapter, client = _lender(clock)
    for _ in range(400):
        await _offer(adapter)
        clock.now += 5  # 2,000 s of quoting: the first offers expired long ago
    known = await _known(client)
    assert len(known) == (TTL + FORGET_EXPIRED_AFTER_SECONDS) // 5, "those quoted in the last 360 s"
    assert set(known.values()) == {"offered"}


async def test_the_one_phase_accept_takes_a_live_offer_once_and_refuses_the_rest() -> None:
    clock = Clock()
    adapter, _ = _lender(clock)
    live, reserved, late = [await _offer(adapter) for _ in range(3)]
    assert (await adapter.accept(live, "q-1")).funded
    assert (await adapter.accept(live, "q-1")).funded, "a repeat under the same key answers the same"
    assert (await adapter.accept(live, "q-9")).detail == "HTTP 409", "funded already, under another key"
    assert (await adapter.reserve(reserved, "q-2:1")).funded
    assert (await adapter.accept(reserved, "q-2")).detail == "HTTP 409", "held by a reservation"
    clock.now += TTL + 1
    refused = await adapter.accept(late, "q-3")
    assert not refused.funded
    assert "the offer expired at" in refused.detail
    unknown = await adapter.accept(replace(late, provider_ref="sim-bank-000000000000"), "q-4")
    assert unknown.detail == "HTTP 404"
