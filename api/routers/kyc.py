"""The KYC provider's signed webhooks: the only way a borrower's KYC verdict and tier are set. Unauthenticated by API
key (the provider signs instead); a delivery that does not verify is refused with 401 and logged, counts against no
one, and counts toward its source address's refusal limit (shared with the lenders' webhooks: 429 beyond it)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, status

from api.deps import PlatformDep
from compliance.errors import WebhookRejected

router = APIRouter(prefix="/v1/kyc", tags=["kyc"])
log = logging.getLogger(__name__)
MAX_WEBHOOK_BYTES = 64 * 1024


async def _capped_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"a webhook is at most {MAX_WEBHOOK_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BYTES:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"a webhook is at most {MAX_WEBHOOK_BYTES} bytes"
            )
    return bytes(body)


@router.post("/webhooks", status_code=status.HTTP_204_NO_CONTENT)
async def kyc_webhook(request: Request, platform: PlatformDep) -> None:
    """An ``applicantReviewed`` event from the KYC provider, signed with ``X-Creditmesh-Signature``
    (``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``); each event id is taken once."""
    body = await _capped_body(request)
    secret = platform.settings.kyc_webhook_secret.encode()
    headers = dict(request.headers)
    try:
        review = await asyncio.to_thread(platform.borrowers.apply_kyc_review, body, headers, secret, datetime.now(UTC))
    except WebhookRejected as err:
        source = request.client.host if request.client else "-"
        log.warning("KYC webhook refused: %s", err, extra={"source": source})
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"webhook refused: {err}") from err
    log.info("KYC review applied", extra={"applicant_id": review.applicant_id, "state": review.state.value})
