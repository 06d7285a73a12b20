"""A simulated traditional lender: a real HTTP server speaking the Provider Quote Protocol v1.

Run it as its own process: ``python -m providers.sim --port 8600 --secret …``."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, Request, Response
from pydantic import BaseModel, Field

from providers.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, ReplayGuard, SignatureRejected
from providers.sim.pricing import price


class QuoteBody(BaseModel):
    request_id: str
    asset: str
    asset_decimals: int = Field(ge=0, le=36)
    principal: str
    term_days: int = Field(ge=1)
    purpose: str = ""
    collateral_asset: str
    collateral_amount: str
    grade: int = Field(ge=1, le=5)
    jurisdiction: str = ""


def create_lender_app(lender_id: str, secret: str, offer_ttl_seconds: int = 900) -> FastAPI:
    app = FastAPI(title=f"simulated lender {lender_id}", version="1")
    guard = ReplayGuard(secret)
    accepted: dict[str, str] = {}

    async def verified_body(request: Request, timestamp: str | None, signature: str | None) -> bytes:
        body = await request.body()
        try:
            guard.verify(timestamp, signature, body, int(time.time()))
        except SignatureRejected as err:
            raise HTTPException(status_code=401, detail=str(err)) from err
        return body

    @app.post("/v1/quotes", response_model=None)
    async def quote(
        request: Request,
        x_creditmesh_timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER)] = None,
        x_creditmesh_signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    ) -> Response | dict[str, object]:
        body = QuoteBody.model_validate_json(
            await verified_body(request, x_creditmesh_timestamp, x_creditmesh_signature)
        )
        offered = price(int(body.principal), body.asset_decimals, body.term_days, body.grade)
        if offered is None:
            return Response(status_code=204)
        expires = datetime.now(UTC) + timedelta(seconds=offer_ttl_seconds)
        return {
            "protocol_version": "1",
            "offers": [
                {
                    "offer_ref": f"{lender_id}-{uuid.uuid4().hex[:12]}",
                    "rate_bps": offered.rate_bps,
                    "origination_fee": offered.origination_fee,
                    "repayment": "single",
                    "installments": 1,
                    "expires_at": expires.isoformat(),
                }
            ],
        }

    @app.post("/v1/offers/{offer_ref}/accept")
    async def accept(
        offer_ref: str,
        request: Request,
        idempotency_key: Annotated[str, Header(alias="Idempotency-Key")],
        x_creditmesh_timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER)] = None,
        x_creditmesh_signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    ) -> dict[str, str]:
        await verified_body(request, x_creditmesh_timestamp, x_creditmesh_signature)
        previous = accepted.setdefault(idempotency_key, offer_ref)
        if previous != offer_ref:
            raise HTTPException(status_code=409, detail="idempotency key used for another offer")
        return {"status": "funded", "detail": f"{lender_id} funds {offer_ref} off-chain"}

    @app.get("/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "lender": lender_id}

    return app
