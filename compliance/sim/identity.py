"""The simulated identity-verification provider and MLA status service, one FastAPI app.

KYC under ``/kyc``: ``POST /applicants`` → ``POST /applicants/{id}/verifications`` (answers PENDING at once), then the
verdict (``compliance.kyc.simulated_review``: deterministic for test identities) is POSTed as a signed
``applicantReviewed`` webhook, dated by its ``reviewedAt``, to the platform's webhook URL, retried with backoff until
it is taken. MLA under
``/mla``: ``POST /status`` answers from covered periods given at start (``compliance.mla.covered_on``). Requests
must carry the platform's signature. Applicants are kept in a bounded map (the oldest forgotten)."""

from __future__ import annotations

import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
from fastapi import BackgroundTasks, FastAPI, HTTPException, Request
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from compliance.errors import WebhookRejected
from compliance.jurisdiction import JurisdictionRules, load_rules
from compliance.kyc import (
    IdentityDocument,
    IdentityProfile,
    KycReview,
    sign_webhook,
    simulated_review,
    verify_signature,
)
from compliance.mla import CoveredPeriod, MlaQuery, covered_on

log = logging.getLogger(__name__)
MAX_APPLICANTS = 10_000
DELIVERY_PATIENCE_SECONDS = 60.0


@dataclass(frozen=True)
class IdentitySimConfig:
    kyc_secret: bytes
    webhook_url: str
    mla_secret: bytes
    mla_covered: tuple[CoveredPeriod, ...] = ()
    max_applicants: int = MAX_APPLICANTS


class _Undelivered(Exception):
    """The platform did not take the webhook yet (connection refused, 5xx)."""


def _field(document: dict[str, Any], name: str) -> Any:
    try:
        return document[name]
    except KeyError as err:
        raise HTTPException(422, f"missing field {name!r}") from err


def _date(document: dict[str, Any], name: str) -> date:
    try:
        return date.fromisoformat(str(_field(document, name)))
    except ValueError as err:
        raise HTTPException(422, f"{name!r} is not an ISO date") from err


def create_identity_app(config: IdentitySimConfig, rules: JurisdictionRules | None = None) -> FastAPI:
    ages = rules or load_rules()
    applicants: OrderedDict[str, tuple[str, IdentityProfile]] = OrderedDict()
    http = httpx.AsyncClient(timeout=httpx.Timeout(5.0))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await http.aclose()

    app = FastAPI(title="creditmesh simulated identity providers", lifespan=lifespan)

    async def signed(request: Request, secret: bytes) -> dict[str, Any]:
        body = await request.body()
        try:
            verify_signature(body, request.headers, secret, datetime.now(UTC))
            document = json.loads(body)
        except WebhookRejected as err:
            raise HTTPException(401, str(err)) from err
        except ValueError as err:
            raise HTTPException(400, "the body is not JSON") from err
        if not isinstance(document, dict):
            raise HTTPException(400, "the body is not a JSON object")
        return document

    async def deliver(review: KycReview) -> None:
        body = json.dumps(review.payload(), separators=(",", ":")).encode()
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_delay(DELIVERY_PATIENCE_SECONDS),
                wait=wait_exponential(multiplier=0.05, max=2.0),
                retry=retry_if_exception_type((_Undelivered, httpx.TransportError)),
                reraise=True,
            ):
                with attempt:
                    headers = {"Content-Type": "application/json"} | sign_webhook(
                        body, config.kyc_secret, datetime.now(UTC)
                    )
                    response = await http.post(config.webhook_url, content=body, headers=headers)
                    if response.status_code >= 500:
                        raise _Undelivered(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                log.warning("webhook %s refused with HTTP %d", review.event_id, response.status_code)
        except (_Undelivered, httpx.TransportError) as err:
            log.warning("webhook %s not delivered: %s", review.event_id, err)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "applicants": len(applicants)}

    @app.post("/kyc/applicants", status_code=201)
    async def create_applicant(request: Request) -> dict[str, str]:
        document = await signed(request, config.kyc_secret)
        info = _field(document, "info")
        if not isinstance(info, dict):
            raise HTTPException(422, "'info' must be an object")
        profile = IdentityProfile(
            str(_field(info, "firstName")),
            str(_field(info, "lastName")),
            _date(info, "dob"),
            str(_field(info, "country")),
        )
        applicant_id = f"sim-{uuid.uuid4()}"
        applicants[applicant_id] = (str(_field(document, "externalUserId")), profile)
        while len(applicants) > config.max_applicants:
            applicants.popitem(last=False)
        return {"applicantId": applicant_id, "reviewStatus": "init"}

    @app.post("/kyc/applicants/{applicant_id}/verifications", status_code=201)
    async def verify(applicant_id: str, request: Request, background: BackgroundTasks) -> dict[str, str]:
        body = await signed(request, config.kyc_secret)
        if applicant_id not in applicants:
            raise HTTPException(404, f"unknown applicant {applicant_id}")
        subject_id, profile = applicants[applicant_id]
        raw = _field(body, "document")
        if not isinstance(raw, dict):
            raise HTTPException(422, "'document' must be an object")
        document = IdentityDocument(
            document_type=str(_field(raw, "type")),
            number=str(_field(raw, "number")),
            first_name=str(_field(raw, "firstName")),
            last_name=str(_field(raw, "lastName")),
            date_of_birth=_date(raw, "dob"),
            issuing_country=str(_field(raw, "issuingCountry")),
            expires_on=_date(raw, "validUntil"),
        )
        now = datetime.now(UTC)
        age = ages.age_of_majority(profile.country)
        review = simulated_review(
            str(uuid.uuid4()), subject_id, applicant_id, profile, document, now.date(), age, reviewed_at=now
        )
        background.add_task(deliver, review)
        return {"applicantId": applicant_id, "externalUserId": subject_id, "reviewStatus": "pending"}

    @app.post("/mla/status")
    async def mla_status(request: Request) -> dict[str, Any]:
        document = await signed(request, config.mla_secret)
        query = MlaQuery(
            str(_field(document, "lastName")),
            str(_field(document, "firstName")),
            _date(document, "dateOfBirth"),
            str(_field(document, "ssnOrDodId")),
            _date(document, "asOf"),
        )
        return {
            "covered": covered_on(config.mla_covered, query),
            "asOf": query.as_of.isoformat(),
            "certificateId": f"sim-mla-{uuid.uuid4().hex[:16]}",
        }

    return app


def covered_periods(entries: Iterable[dict[str, str]]) -> tuple[CoveredPeriod, ...]:
    """Covered periods from JSON documents ``{last_name, date_of_birth, ssn_or_dod_id, start, end?}``."""
    return tuple(
        CoveredPeriod(
            last_name=entry["last_name"],
            date_of_birth=date.fromisoformat(entry["date_of_birth"]),
            ssn_or_dod_id=entry["ssn_or_dod_id"],
            start=date.fromisoformat(entry["start"]),
            end=date.fromisoformat(entry["end"]) if entry.get("end") else None,
        )
        for entry in entries
    )


__all__ = ["IdentitySimConfig", "covered_periods", "create_identity_app"]
