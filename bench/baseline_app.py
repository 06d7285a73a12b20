"""The bare baseline of ``bench/scale.py``: an ASGI app that answers ``POST /v1/credit-requests`` by making the same
HTTP calls the platform makes to its lenders — one signed Provider Quote Protocol call to each lender, all at once,
through the platform's own HTTP adapter on the platform's own lender client — and nothing else: no authentication,
screening, risk, pools, signing of offers, database or audit. What the platform adds on top of the lender calls is
measured against it. It answers 201 only when every lender call returned; when one failed it answers 502 (the load
client counts it as an error, never as a request served): until 2026-11-29 it answered 201 whatever number of lender
calls had succeeded, so a baseline losing lender calls under load would have been counted as serving faster.

The client is built as ``api.bootstrap`` builds the platform's (:func:`lender_http`): ``providers.destinations.
lender_client`` — every destination checked by the SSRF guard, aiohttp's pool and parser under httpx's interface
(``providers.http_pool.LenderTransport``), at most 100 connections per lender host — with loopback allowed as the
platform's local settings allow it (``CREDITMESH_OUTBOUND_ALLOWED_NETWORKS`` unset in a local run). Until
2026-11-27 the baseline sent on a plain ``httpx.AsyncClient`` (httpcore and h11), which cost it about twice the CPU
per lender call and collapsed under concurrency (httpcore's pool walk), so its figures flattered the platform's.
Since the same day (u18q) the adapter sends a lender call on that client's aiohttp pool directly
(``LenderClient.exchange``, without httpx's request and response objects) — the platform and this baseline alike,
since both build the client the same way and call the same adapter.

    BENCH_BASELINE_LENDERS='[{"provider_id": …, "base_url": …, "secret": …}, …]' \\
        uv run --frozen --no-sync uvicorn bench.baseline_app:app --port 8100

``BENCH_BASELINE_LENDERS`` takes the shape of ``CREDITMESH_HTTP_LENDERS``
(``providers.sim.fleet.http_lender_settings``).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, HTTPException

from providers.destinations import LOOPBACK_NETWORKS, DestinationGuard, LenderClient, lender_client
from providers.http_lender import HttpLenderAdapter
from providers.models import Capabilities, QuoteRequest

LENDERS_VARIABLE = "BENCH_BASELINE_LENDERS"
#: the platform's lender client's pool limit per lender host (``api.bootstrap``)
MAX_CONNECTIONS_PER_LENDER = 100


def lender_http() -> LenderClient:
    """The lender client as the platform builds it in a local run (``api.bootstrap``: the SSRF guard with the local
    settings' loopback networks, ``lender_client`` with 100 connections per lender host)."""
    return lender_client(DestinationGuard(LOOPBACK_NETWORKS), max_connections=MAX_CONNECTIONS_PER_LENDER)


def create_app(lenders: list[dict[str, Any]]) -> FastAPI:
    """The baseline app asking ``lenders`` (each ``provider_id``, ``base_url``, ``secret``)."""
    adapters: list[HttpLenderAdapter] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with lender_http() as http:
            for lender in lenders:
                capabilities = Capabilities(assets=frozenset({"USDC"}))
                adapters.append(
                    HttpLenderAdapter(lender["provider_id"], lender["base_url"], lender["secret"], capabilities, http)
                )
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/credit-requests", status_code=201)
    async def credit_request(body: dict[str, Any]) -> dict[str, Any]:
        query = QuoteRequest(
            request_id=str(uuid.uuid4()),
            asset=str(body.get("asset", "USDC")),
            asset_decimals=6,
            principal=int(Decimal(str(body.get("amount", "1500"))).scaleb(6)),
            term_days=int(body.get("term_days", 30)),
            purpose="",
            collateral_asset="WETH",
            collateral_amount=10**18,
            collateral_decimals=18,
            chains=(),
            grade=2,
            jurisdiction="US-FL",
        )
        answers = await asyncio.gather(*(adapter.quote(query) for adapter in adapters), return_exceptions=True)
        failed = [f"{type(answer).__name__}: {answer}" for answer in answers if isinstance(answer, BaseException)]
        if failed:  # answered only when every lender was: a request with a lender left out did less work
            raise HTTPException(502, f"{len(failed)} of {len(adapters)} lender calls failed: {failed[0][:200]}")
        return {"quotes": len(answers)}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app(json.loads(os.environ.get(LENDERS_VARIABLE, "[]")))
