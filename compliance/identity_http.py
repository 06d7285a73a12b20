"""The HTTP adapters of the identity providers: KYC (applicant → verification session; the verdict arrives later as
a signed webhook, see ``compliance.kyc``) and the Military Lending Act status service (a query by an operator
account). Each is configured by a base URL and a shared secret; every request is signed like a webhook
(``X-Creditmesh-Signature``), every call has a timeout, answers are size-capped, and foreign errors become
``KycProviderError`` here, once. ``compliance.sim`` serves both for local runs and tests."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import httpx

from compliance.errors import KycProviderError
from compliance.kyc import IdentityDocument, IdentityProfile, KycState, KycStatus, KycTier, sign_webhook
from compliance.mla import MlaQuery, MlaStatus

MAX_ANSWER_BYTES = 64 * 1024
DEFAULT_TIMEOUT = httpx.Timeout(5.0)


async def _signed_post(
    http: httpx.AsyncClient, url: str, document: dict[str, Any], secret: bytes, now: datetime
) -> dict[str, Any]:
    body = json.dumps(document, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"} | sign_webhook(body, secret, now)
    try:
        async with http.stream("POST", url, content=body, headers=headers, timeout=DEFAULT_TIMEOUT) as response:
            raw = bytearray()
            async for chunk in response.aiter_bytes():
                raw += chunk
                if len(raw) > MAX_ANSWER_BYTES:
                    raise KycProviderError(f"{url} answered more than {MAX_ANSWER_BYTES} bytes")
    except httpx.HTTPError as err:
        raise KycProviderError(f"{url} could not be reached ({type(err).__name__})") from err
    if response.status_code not in (200, 201):
        raise KycProviderError(f"{url} answered HTTP {response.status_code}")
    try:
        answer = json.loads(raw)
    except (ValueError, RecursionError) as err:  # RecursionError: arrays nested thousands deep, within the cap
        raise KycProviderError(f"{url} answered something that is not JSON") from err
    if not isinstance(answer, dict):
        raise KycProviderError(f"{url} answered a JSON {type(answer).__name__}, not an object")
    return answer


def _pending(answer: dict[str, Any], subject_id: str, now: datetime, url: str) -> KycStatus:
    applicant_id = answer.get("applicantId")
    if not isinstance(applicant_id, str) or not 1 <= len(applicant_id) <= 64:
        raise KycProviderError(f"{url} answered no usable applicantId")
    return KycStatus(applicant_id, subject_id, KycState.PENDING, KycTier.NONE, (), now)


class HttpKycProvider:
    """``KycProvider`` over HTTP: ``POST {base}/applicants`` creates the applicant, ``POST
    {base}/applicants/{id}/verifications`` opens a verification session with the document. Both answer PENDING: the
    tier arrives only in the provider's signed ``applicantReviewed`` webhook."""

    def __init__(self, base_url: str, secret: bytes, http: httpx.AsyncClient) -> None:
        self._base = base_url.rstrip("/")
        self._secret = secret
        self._http = http

    async def create_applicant(self, subject_id: str, profile: IdentityProfile, now: datetime) -> KycStatus:
        url = f"{self._base}/applicants"
        document = {
            "externalUserId": subject_id,
            "info": {
                "firstName": profile.first_name,
                "lastName": profile.last_name,
                "dob": profile.date_of_birth.isoformat(),
                "country": profile.country,
            },
        }
        return _pending(await _signed_post(self._http, url, document, self._secret, now), subject_id, now, url)

    async def submit_document(self, applicant_id: str, document: IdentityDocument, now: datetime) -> KycStatus:
        url = f"{self._base}/applicants/{applicant_id}/verifications"
        body = {
            "document": {
                "type": document.document_type,
                "number": document.number,
                "firstName": document.first_name,
                "lastName": document.last_name,
                "dob": document.date_of_birth.isoformat(),
                "issuingCountry": document.issuing_country,
                "validUntil": document.expires_on.isoformat(),
            }
        }
        answer = await _signed_post(self._http, url, body, self._secret, now)
        subject = answer.get("externalUserId")
        if not isinstance(subject, str):
            raise KycProviderError(f"{url} answered no externalUserId")
        return _pending(answer | {"applicantId": applicant_id}, subject, now, url)


class HttpMlaStatusProvider:
    """``MlaStatusProvider`` over HTTP: ``POST {base}/status`` with the query, answered with the covered status and a
    certificate id (the shape of the DoD MLA website's single-record request)."""

    def __init__(self, base_url: str, secret: bytes, http: httpx.AsyncClient) -> None:
        self._base = base_url.rstrip("/")
        self._secret = secret
        self._http = http

    async def check(self, query: MlaQuery, now: datetime) -> MlaStatus:
        url = f"{self._base}/status"
        document = {
            "lastName": query.last_name,
            "firstName": query.first_name,
            "dateOfBirth": query.date_of_birth.isoformat(),
            "ssnOrDodId": query.ssn_or_dod_id,
            "asOf": query.as_of.isoformat(),
        }
        answer = await _signed_post(self._http, url, document, self._secret, now)
        try:
            covered, as_of, certificate = answer["covered"], answer["asOf"], answer["certificateId"]
            if not isinstance(covered, bool) or not isinstance(certificate, str):
                raise TypeError("covered must be a boolean and certificateId a string")
            return MlaStatus(covered, date.fromisoformat(str(as_of)), certificate)
        except (KeyError, ValueError, TypeError) as err:
            raise KycProviderError(f"{url} answered no usable MLA status") from err
