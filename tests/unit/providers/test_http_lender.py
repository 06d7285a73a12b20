"""The Provider Quote Protocol adapter against httpx.MockTransport: every request signed (HMAC over timestamp and
body, a unique nonce) with a timeout; every answer the protocol does not allow refused with its reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from providers._exceptions import (
    InvalidRegistration,
    ProviderProtocolError,
    ProviderServerError,
    ProviderTimeout,
    ProviderUnavailable,
)
from providers.base import AdapterContext, ProviderRegistration
from providers.http_lender import HttpLenderAdapter
from providers.models import Capabilities, Decline
from providers.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, ReplayGuard
from tests.unit.providers.fakes import REQUEST

pytestmark = pytest.mark.unit

SECRET = "unit-test-secret"


def _offer(**changes: Any) -> dict[str, Any]:
    return {
        "offer_ref": "bank-1",
        "rate_bps": 800,
        "origination_fee": 15_000_000,
        "repayment": "single",
        "installments": 1,
        "expires_at": (datetime.now(UTC) + timedelta(minutes=10)).isoformat(),
    } | changes


def _adapter(handler: Callable[[httpx.Request], httpx.Response]) -> HttpLenderAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpLenderAdapter("bank", "http://lender.test", SECRET, Capabilities(assets=frozenset({"USDC"})), client)


async def test_a_valid_offer_is_normalized_and_the_request_is_signed_with_a_nonce() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"protocol_version": "1", "offers": [_offer()]})

    adapter = _adapter(handler)
    offers = await adapter.quote(REQUEST)
    await adapter.quote(REQUEST)
    assert not isinstance(offers, Decline)
    assert (offers[0].rate_bps, offers[0].origination_fee, offers[0].principal) == (800, 15_000_000, REQUEST.principal)
    guard = ReplayGuard(SECRET)
    for request in seen:
        guard.verify(
            request.headers[TIMESTAMP_HEADER],
            request.headers[SIGNATURE_HEADER],
            request.content,
            int(datetime.now(UTC).timestamp()),
        )
        assert request.extensions["timeout"]["read"] == 2.0
    bodies = [json.loads(request.content) for request in seen]
    assert bodies[0]["nonce"] != bodies[1]["nonce"], "a retried quote is never a replay"
    assert bodies[0]["principal"] == str(REQUEST.principal)


async def test_204_is_a_decline() -> None:
    assert isinstance(await _adapter(lambda r: httpx.Response(204)).quote(REQUEST), Decline)


@pytest.mark.parametrize(
    ("answer", "error", "reason"),
    [
        (httpx.Response(503), ProviderServerError, "HTTP 503"),
        (
            httpx.Response(200, content=b'{"protocol_version": "1", "offers": [{"offer_'),
            ProviderProtocolError,
            "Invalid JSON",
        ),
        (
            httpx.Response(200, json={"protocol_version": "1", "offers": [{"ref": "x"}]}),
            ProviderProtocolError,
            "offer_ref",
        ),
        (
            httpx.Response(200, json={"protocol_version": "1", "offers": [_offer(rate_bps=-5)]}),
            ProviderProtocolError,
            "rate_bps",
        ),
        (
            httpx.Response(200, json={"protocol_version": "1", "offers": [_offer(rate_bps="800")]}),
            ProviderProtocolError,
            "rate_bps",
        ),
        (
            httpx.Response(200, json={"protocol_version": "1", "offers": [_offer(expires_at="2020-01-01T00:00:00Z")]}),
            ProviderProtocolError,
            "expired at 2020-01-01",
        ),
        (httpx.Response(200, json={"protocol_version": "2", "offers": [_offer()]}), ProviderProtocolError, "version"),
        (httpx.Response(200, json={"protocol_version": "1", "offers": []}), ProviderProtocolError, "offers"),
        (httpx.Response(401, json={"detail": "replayed request"}), ProviderProtocolError, "HTTP 401"),
    ],
    ids=["5xx", "malformed-json", "schema", "negative-rate", "rate-as-string", "expired", "version", "empty", "401"],
)
async def test_answers_outside_the_protocol_are_refused_with_the_reason(
    answer: httpx.Response, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error, match=reason):
        await _adapter(lambda request: answer).quote(REQUEST)


@pytest.mark.parametrize(
    ("exception", "error"),
    [(httpx.ReadTimeout("slow"), ProviderTimeout), (httpx.ConnectError("refused"), ProviderUnavailable)],
)
async def test_transport_errors_are_translated(exception: Exception, error: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exception

    with pytest.raises(error):
        await _adapter(handler).quote(REQUEST)


async def test_accept_sends_the_idempotency_key() -> None:
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        return httpx.Response(200, json={"status": "funded"})

    adapter = _adapter(handler)
    offers = await _adapter(lambda r: httpx.Response(200, json={"protocol_version": "1", "offers": [_offer()]})).quote(
        REQUEST
    )
    assert not isinstance(offers, Decline)
    result = await adapter.accept(offers[0], "quote-7")
    assert result.funded
    assert keys == ["quote-7"]


def test_registration_config_is_validated_with_a_reason() -> None:
    context = AdapterContext(httpx.AsyncClient())
    with pytest.raises(InvalidRegistration, match="base_url"):
        HttpLenderAdapter.from_registration(
            ProviderRegistration("x", "http", {"base_url": "ftp://x", "secret": "s" * 16}), context
        )
    with pytest.raises(InvalidRegistration, match="secret"):
        HttpLenderAdapter.from_registration(ProviderRegistration("x", "http", {"base_url": "http://x.test"}), context)
    built = HttpLenderAdapter.from_registration(
        ProviderRegistration("x", "http", {"base_url": "http://x.test/", "secret": "s" * 16}), context
    )
    assert built.base_url == "http://x.test"
