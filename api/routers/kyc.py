"""The KYC provider's signed webhooks: the only way a borrower's KYC verdict and tier are set. Unauthenticated by API
key (the provider signs instead). A delivery that does not verify is refused with 401 and counts against no one but
its source address: toward that address's refusal limit, shared with the lenders' webhooks
(``providers.webhooks.RefusalLimiter``); past the limit its refusals are answered 429 and no longer logged. As on the
lenders' route, a source past its limit is still verified: a verdict that verifies is applied whatever the count of
its address, so refusals from an address the provider shares (a proxy not listed in ``CREDITMESH_TRUSTED_PROXIES``)
never hold up the verdicts."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import NoReturn

from fastapi import APIRouter, HTTPException, Request, status

from api import refusals
from api.body_limit import capped_body
from api.client import client_address
from api.deps import PlatformDep
from compliance.errors import UnusableKycEvent, WebhookRejected
from providers.webhooks import RefusalLimiter, refuse_unauthenticated

router = APIRouter(prefix="/v1/kyc", tags=["kyc"])
log = logging.getLogger(__name__)
MAX_WEBHOOK_BYTES = 64 * 1024
KYC_PROVIDER = "the KYC provider"  # what a refusal's log line names in place of a lender's id


@router.post("/webhooks", status_code=status.HTTP_204_NO_CONTENT)
async def kyc_webhook(request: Request, platform: PlatformDep) -> None:
    """An ``applicantReviewed`` event from the KYC provider, signed with ``X-Creditmesh-Signature``
    (``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``); each event id is taken once. A verdict dated
    (``reviewedAt``) before the one stored for its applicant is taken (204) and ignored. An event that verifies but
    cannot be applied (an applicant we do not know, not an applicant review, a ``reviewedAt`` ahead of now) is 422
    ``kyc-event-unusable``, not counted against anyone. A refusal (401; 413 for a body over 64 KiB) counts toward its
    source address's limit, shared with the lenders' webhooks (20 a minute): past it, 429 with ``Retry-After``."""
    limiter = platform.providers.webhook_refusals
    source = client_address(request, platform.settings.trusted_proxy_networks) or "unknown"
    body = await capped_body(request, MAX_WEBHOOK_BYTES)
    if body is None:
        await _refuse(limiter, source, f"a webhook is at most {MAX_WEBHOOK_BYTES} bytes", 413)
    secret = platform.settings.kyc_webhook_secret.encode()
    headers = dict(request.headers)
    try:
        review = await asyncio.to_thread(platform.borrowers.apply_kyc_review, body, headers, secret, datetime.now(UTC))
    except UnusableKycEvent as err:  # the provider's own event: answered, not counted against its address
        log.warning("KYC event not applied: %s", err)
        raise refusals.KYC_EVENT_UNUSABLE(f"the event verifies but cannot be applied: {err}") from err
    except WebhookRejected as err:
        await _refuse(limiter, source, f"webhook refused: {err}", status.HTTP_401_UNAUTHORIZED)
    log.info("KYC review taken", extra={"applicant_id": review.applicant_id, "state": review.state.value})


async def _refuse(limiter: RefusalLimiter, source: str, reason: str, status_code: int) -> NoReturn:
    """Count the refusal against ``source`` and raise its answer (``providers.webhooks.refuse_unauthenticated``:
    ``status_code``, or 429 with ``Retry-After`` past the source's limit)."""
    refused = await refuse_unauthenticated(limiter, source, KYC_PROVIDER, reason, status_code)
    headers = {"Retry-After": str(limiter.limits.window_seconds)} if refused.status_code == 429 else None
    raise HTTPException(refused.status_code, str(refused), headers)
