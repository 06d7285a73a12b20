"""A signed Provider Quote Protocol body names its operation and offer, and the simulated lender (as the protocol now
asks every lender) refuses one sent to another path: the signature covers the body, not the path, and the platform's
signed ``cancel`` of a reserved offer, captured and sent to ``/fund``, funded a loan that never opened on-chain. In
process, over httpx's ASGI transport, through the platform's adapter."""

from __future__ import annotations

import httpx
import pytest

from providers.http_lender import HttpLenderAdapter
from providers.models import Capabilities, Decline
from providers.sim.fleet import LatencySpec, SimLender
from providers.sim.lender import create_sim_app
from tests.unit.providers.fakes import REQUEST

pytestmark = pytest.mark.unit

SECRET = "sim-unit-secret"


class Interceptor(httpx.AsyncBaseTransport):
    """Passes requests to the simulator; while ``holding``, keeps them instead (answering as the lender would), as
    someone between the platform and the lender could."""

    def __init__(self, app: httpx.ASGITransport) -> None:
        self.app, self.held, self.holding = app, list[httpx.Request](), False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        if self.holding:
            self.held.append(request)
            return httpx.Response(200, json={"status": "cancelled"})
        return await self.app.handle_async_request(request)


async def test_a_signed_body_is_refused_at_another_operations_or_offers_path() -> None:
    app = create_sim_app([SimLender(lender_id="sim-bank", secret=SECRET, latency=LatencySpec(ms=0))])
    interceptor = Interceptor(httpx.ASGITransport(app=app))
    async with httpx.AsyncClient(transport=interceptor, base_url="http://sim.test") as client:
        base = "http://sim.test/lenders/sim-bank"
        adapter = HttpLenderAdapter("sim-bank", base, SECRET, Capabilities(assets=frozenset({"USDC"})), client)
        quoted = [await adapter.quote(REQUEST) for _ in range(2)]
        assert not any(isinstance(offers, Decline) for offers in quoted)
        first, second = (offers[0] for offers in quoted if not isinstance(offers, Decline))
        assert first.provider_ref != second.provider_ref
        assert (await adapter.reserve(first, "q-1:1")).funded
        assert (await adapter.reserve(second, "q-2:1")).funded

        interceptor.holding = True  # the platform's signed cancels of the first offer, kept from the lender
        for _ in range(2):
            await adapter.cancel(first.provider_ref, "q-1:1")
        interceptor.holding = False
        elsewhere_paths = (f"{first.provider_ref}/fund", f"{second.provider_ref}/cancel")
        for cancel, path in zip(interceptor.held, elsewhere_paths, strict=True):
            headers = {name: value for name, value in cancel.headers.items() if name.lower() != "content-length"}
            elsewhere = await client.post(f"{base}/v1/offers/{path}", content=cancel.content, headers=headers)
            assert elsewhere.status_code == 400, (path, elsewhere.text)
        offers_now = (await client.get("/control/lenders/sim-bank")).json()["offers"]
        assert (offers_now[first.provider_ref], offers_now[second.provider_ref]) == ("reserved", "reserved")
