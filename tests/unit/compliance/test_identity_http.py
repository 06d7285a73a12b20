"""The identity providers' HTTP adapters at their seam (httpx.MockTransport): what they send, and every foreign
failure translated to KycProviderError once. The simulator itself is met over real HTTP by the e2e tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime

import httpx
import pytest

from compliance.errors import KycProviderError
from compliance.identity_http import MAX_ANSWER_BYTES, HttpKycProvider, HttpMlaStatusProvider
from compliance.kyc import IdentityDocument, IdentityProfile, KycState, KycTier, verify_signature
from compliance.mla import MlaQuery

pytestmark = pytest.mark.unit

NOW = datetime.now(UTC)
SECRET = b"provider-secret"
PROFILE = IdentityProfile("Jane", "Doe", date(1990, 5, 17), "US-FL")
DOCUMENT = IdentityDocument("passport", "X1", "Jane", "Doe", date(1990, 5, 17), "US", date(2031, 1, 1))
QUERY = MlaQuery("Doe", "Jane", date(1990, 5, 17), "123456789", date(2026, 11, 26))


def client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_kyc_requests_are_signed_and_answer_pending() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        verify_signature(request.content, request.headers, SECRET, NOW)  # the provider can authenticate us
        if request.url.path == "/kyc/applicants":
            return httpx.Response(201, json={"applicantId": "app-1"})
        return httpx.Response(201, json={"applicantId": "app-1", "externalUserId": "b-1", "reviewStatus": "pending"})

    async with client(handler) as http:
        provider = HttpKycProvider("https://kyc.example/kyc/", SECRET, http)
        applicant = await provider.create_applicant("b-1", PROFILE, NOW)
        session = await provider.submit_document(applicant.applicant_id, DOCUMENT, NOW)
    assert (applicant.applicant_id, applicant.state, applicant.tier) == ("app-1", KycState.PENDING, KycTier.NONE)
    assert (session.subject_id, session.state) == ("b-1", KycState.PENDING)
    assert [r.url.path for r in seen] == ["/kyc/applicants", "/kyc/applicants/app-1/verifications"]
    assert json.loads(seen[0].content)["externalUserId"] == "b-1"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.Response(503, text="down"), "HTTP 503"),
        (httpx.Response(200, text="<html>"), "not JSON"),
        (httpx.Response(200, json=[1]), "not an object"),
        (httpx.Response(200, json={"id": "x"}), "applicantId"),
        (httpx.Response(200, content=b"{" + b" " * MAX_ANSWER_BYTES + b"}"), "more than"),
        (httpx.Response(200, content=b"[" * 30_000 + b"]" * 30_000), "not JSON"),  # nested past the recursion limit
    ],
)
async def test_kyc_answers_that_cannot_be_used_are_provider_errors(answer: httpx.Response, message: str) -> None:
    async with client(lambda request: answer) as http:
        with pytest.raises(KycProviderError, match=message):
            await HttpKycProvider("https://kyc.example", SECRET, http).create_applicant("b-1", PROFILE, NOW)


async def test_transport_failures_are_provider_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with client(refuse) as http:
        with pytest.raises(KycProviderError, match="ConnectError"):
            await HttpMlaStatusProvider("https://mla.example", SECRET, http).check(QUERY, NOW)


async def test_mla_status_is_read_and_checked() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        verify_signature(request.content, request.headers, SECRET, NOW)
        body = json.loads(request.content)
        return httpx.Response(200, json={"covered": True, "asOf": body["asOf"], "certificateId": "cert-1"})

    async with client(handler) as http:
        status = await HttpMlaStatusProvider("https://mla.example", SECRET, http).check(QUERY, NOW)
    assert (status.covered, status.as_of, status.certificate_id) == (True, QUERY.as_of, "cert-1")
    async with client(lambda r: httpx.Response(200, json={"covered": "yes", "asOf": "x", "certificateId": 1})) as http:
        with pytest.raises(KycProviderError, match="no usable MLA status"):
            await HttpMlaStatusProvider("https://mla.example", SECRET, http).check(QUERY, NOW)
