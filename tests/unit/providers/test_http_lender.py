"""The Provider Quote Protocol adapter against httpx.MockTransport: every request signed (HMAC over timestamp and
body, a unique nonce) with a timeout; every answer the protocol does not allow refused with its reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
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
from providers.models import Capabilities, Decline, InstallmentSchedule, RepaymentShape, ScheduledPayment
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
        "expires_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
    } | changes


THREE_MONTHLY: dict[str, Any] = {
    "repayment": "installments",
    "installments": 3,
    "schedule": {
        "frequency": "monthly",
        "day_count": "actual/365",
        "first_due": "2030-02-10",
        "balloon": 100_000_000,
        "payments": [
            {"number": n, "due": due, "amount": amount}
            for n, due, amount in (
                (1, "2030-02-10", 310_000_000),
                (2, "2030-03-10", 310_000_000),
                (3, "2030-04-10", 411_000_000),
            )
        ],
    },
}


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


async def test_an_amortizing_offer_carries_its_schedule_and_the_request_its_start_date() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(
            200, json={"protocol_version": "1", "offers": [_offer(**THREE_MONTHLY | {"rate_bps": 950.0})]}
        )

    offers = await _adapter(handler).quote(replace(REQUEST, start_date=date(2030, 1, 10)))
    assert not isinstance(offers, Decline)
    offer = offers[0]
    assert (offer.repayment, offer.installments, offer.rate_bps) == (RepaymentShape.INSTALLMENTS, 3, 950)
    assert offer.schedule == InstallmentSchedule(
        frequency="monthly",
        day_count="actual/365",
        first_due=date(2030, 2, 10),
        balloon=100_000_000,
        payments=(
            ScheduledPayment(1, date(2030, 2, 10), 310_000_000),
            ScheduledPayment(2, date(2030, 3, 10), 310_000_000),
            ScheduledPayment(3, date(2030, 4, 10), 411_000_000),
        ),
    )
    assert seen[0]["start_date"] == "2030-01-10"


async def test_a_single_payment_offer_has_no_schedule() -> None:
    offers = await _adapter(lambda r: httpx.Response(200, json={"protocol_version": "1", "offers": [_offer()]})).quote(
        REQUEST
    )
    assert not isinstance(offers, Decline)
    assert offers[0].schedule is None


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
        (
            httpx.Response(200, json={"protocol_version": "1", "offers": [_offer(rate_bps=948.22)]}),
            ProviderProtocolError,
            r"rate 948.22 bps is finer than a basis point.*refused, not rounded",
        ),
        (
            httpx.Response(
                200, json={"protocol_version": "1", "offers": [_offer(**THREE_MONTHLY | {"installments": 4})]}
            ),
            ProviderProtocolError,
            "lists 3 payments for 4 installments",
        ),
        (
            httpx.Response(
                200,
                json={
                    "protocol_version": "1",
                    "offers": [_offer(**THREE_MONTHLY | {"schedule": {"frequency": "yearly"}})],
                },
            ),
            ProviderProtocolError,
            "schedule.frequency",
        ),
        (httpx.Response(200, json={"protocol_version": "2", "offers": [_offer()]}), ProviderProtocolError, "version"),
        (httpx.Response(200, json={"protocol_version": "1", "offers": []}), ProviderProtocolError, "offers"),
        (httpx.Response(401, json={"detail": "replayed request"}), ProviderProtocolError, "HTTP 401"),
    ],
    ids=[
        "5xx",
        "malformed-json",
        "schema",
        "negative-rate",
        "rate-as-string",
        "expired",
        "sub-basis-point-rate",
        "payments-not-installments",
        "unknown-frequency",
        "version",
        "empty",
        "401",
    ],
)
async def test_answers_outside_the_protocol_are_refused_with_the_reason(
    answer: httpx.Response, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error, match=reason):
        await _adapter(lambda request: answer).quote(REQUEST)


#: a lender's own words, written to reach a borrower through an error's detail
LENDER_TEXT = "URGENT-your-application-is-on-hold.call-555-0100.creditmesh-verify.example"


@pytest.mark.parametrize(
    "answer",
    [
        {"protocol_version": f"URGENT: your application is on hold, call {LENDER_TEXT}", "offers": [_offer()]},
        {"protocol_version": "1", "offers": [_offer(offer_ref=LENDER_TEXT, expires_at="2020-01-01T00:00:00Z")]},
        {"protocol_version": "1", "offers": [_offer(offer_ref=LENDER_TEXT, rate_bps=948.22)]},
        {"protocol_version": "1", "offers": [_offer(offer_ref=LENDER_TEXT, **THREE_MONTHLY | {"installments": 4})]},
    ],
    ids=["protocol-version", "expired", "sub-basis-point-rate", "payments-not-installments"],
)
async def test_a_refused_answer_never_quotes_the_lenders_text(answer: dict[str, Any]) -> None:
    """A refusal's reason becomes ``provider_outcomes[].detail``, which the borrower reads: it named the lender's
    ``protocol_version`` (any string, quoted) and ``offer_ref`` as sent. Only the supported version is taken, and an
    offer is named by its place in the answer."""
    with pytest.raises(ProviderProtocolError) as refused:
        await _adapter(lambda request: httpx.Response(200, json=answer)).quote(REQUEST)
    assert LENDER_TEXT not in str(refused.value)
    assert "URGENT" not in str(refused.value)


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


@pytest.mark.parametrize(
    "client_headers", [{}, {"X-Deployment": "eu-1"}, {"content-type": "text/plain", "User-Agent": "creditmesh"}]
)
def test_a_request_is_built_as_the_clients_build_request_built_it(client_headers: dict[str, str]) -> None:
    """The adapter builds its requests itself (the client's headers taken once) instead of ``build_request`` on every
    call: the same method, URL, headers (the client's, then ours; one of the client's set again here as httpx merges
    it), body and timeout, on every path and with or without a body."""
    client = httpx.AsyncClient(headers=client_headers)
    adapter = HttpLenderAdapter(
        "bank", "https://bank.example/lend", SECRET, Capabilities(assets=frozenset({"USDC"})), client, timeout=1.5
    )
    ours = {
        "Content-Type": "application/json",
        "X-Creditmesh-Protocol": "1",
        SIGNATURE_HEADER: "ab",
        "Idempotency-Key": "k",
    }
    for method, path, body in [
        ("POST", "/v1/quotes", b'{"a":1}'),
        ("POST", "/v1/offers/ref-1/accept", b'{"b":2}'),
        ("GET", "/v1/offers/ref-1", b""),
        ("GET", "/v1/health", b""),
    ]:
        built = adapter._request(method, path, body, ours)
        expected = client.build_request(
            method, f"https://bank.example/lend{path}", content=body or None, headers=ours, timeout=adapter._timeout
        )
        assert (built.method, built.url) == (expected.method, expected.url)
        assert built.headers.multi_items() == expected.headers.multi_items()
        assert built.content == expected.content
        assert built.extensions == expected.extensions
