"""The bare baseline of ``bench/scale.py``: an ASGI app that answers ``POST /v1/credit-requests`` by making the same
HTTP calls the platform makes to its lenders — one signed Provider Quote Protocol call to each lender, all at once,
through the platform's own HTTP adapter — and nothing else: no authentication, screening, risk, pools, signing of
offers, database or audit. What the platform adds on top of the lender calls is measured against it.

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

import httpx
from fastapi import FastAPI

from providers.http_lender import HttpLenderAdapter
from providers.models import Capabilities, QuoteRequest

LENDERS_VARIABLE = "BENCH_BASELINE_LENDERS"


def create_app(lenders: list[dict[str, Any]]) -> FastAPI:
    """The baseline app asking ``lenders`` (each ``provider_id``, ``base_url``, ``secret``)."""
    adapters: list[HttpLenderAdapter] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=1_000, max_keepalive_connections=1_000)
        async with httpx.AsyncClient(limits=limits) as http:
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
        return {"quotes": sum(1 for answer in answers if not isinstance(answer, BaseException))}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app(json.loads(os.environ.get(LENDERS_VARIABLE, "[]")))
