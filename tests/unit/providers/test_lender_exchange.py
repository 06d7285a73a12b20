"""The lender client's direct path (``LenderClient.exchange``: aiohttp's pool without httpx's request and response)
against a lender on loopback: the same request on the wire as httpx's ``send`` through the same transport, the same
answer read; an answer past the size limit refused (declared or read), a compressed one decoded; a lender that is not
there or does not answer fails as before."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from providers._exceptions import ProviderProtocolError, ProviderTimeout, ProviderUnavailable
from providers.destinations import LOOPBACK_NETWORKS, DestinationGuard, PinnedTransport, lender_client
from providers.http_lender import MAX_RESPONSE_BYTES, HttpLenderAdapter
from providers.models import Capabilities, Decline
from providers.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, ReplayGuard
from tests.unit.providers.fakes import REQUEST

pytestmark = pytest.mark.unit

SECRET = "unit-test-secret"
#: headers that differ from one request to the next (the signature covers the body's nonce)
_VARYING = {TIMESTAMP_HEADER.lower(), SIGNATURE_HEADER.lower(), "x-correlation-id", "content-length"}


def _quote_answer() -> bytes:
    offer = {
        "offer_ref": "bank-1",
        "rate_bps": 800,
        "origination_fee": 15_000_000,
        "expires_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
    }
    return json.dumps({"protocol_version": "1", "offers": [offer]}).encode()


def _response(body: bytes, *headers: str) -> bytes:
    head = ["HTTP/1.1 200 OK", "Content-Type: application/json", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@asynccontextmanager
async def _lender(
    answer: bytes, hang: bool = False
) -> AsyncIterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    """A lender on loopback recording each request (request line, headers, body) and writing ``answer`` to it."""
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {}
                for line in head[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen.append((head[0], headers, body))
                if hang:
                    await asyncio.sleep(30)
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen


def _adapter(base: str, client: httpx.AsyncClient, timeout: float = 2.0) -> HttpLenderAdapter:
    return HttpLenderAdapter("bank", base, SECRET, Capabilities(assets=frozenset({"USDC"})), client, timeout=timeout)


async def test_the_direct_path_sends_the_request_httpx_sent_and_reads_the_same_answer() -> None:
    guard = DestinationGuard(LOOPBACK_NETWORKS)
    through = httpx.AsyncClient(transport=PinnedTransport(guard))
    async with _lender(_response(_quote_answer())) as (base, seen), lender_client(guard) as direct, through:
        answer = await direct.exchange(
            "GET", httpx.URL(f"{base}/v1/health"), {"Accept": "*/*"}, b"", httpx.Timeout(2.0), 1000
        )
        assert answer is not None, "the lender client sends on its pool directly"
        assert answer[0] == 200
        offers = [await _adapter(base, client).quote(REQUEST) for client in (direct, through)]
    assert offers[0] == offers[1]
    assert not isinstance(offers[0], Decline)
    assert offers[0][0].rate_bps == 800
    (_, _, _), (line_direct, direct_headers, direct_body), (line_httpx, httpx_headers, httpx_body) = seen
    assert line_direct == line_httpx == "POST /v1/quotes HTTP/1.1"
    assert {k: v for k, v in direct_headers.items() if k not in _VARYING} == {
        k: v for k, v in httpx_headers.items() if k not in _VARYING
    }
    assert direct_headers["host"] == base.removeprefix("http://")
    assert int(direct_headers["content-length"]) == len(direct_body)
    assert json.loads(direct_body) | {"nonce": ""} == json.loads(httpx_body) | {"nonce": ""}
    ReplayGuard(SECRET).verify(
        direct_headers[TIMESTAMP_HEADER.lower()],
        direct_headers[SIGNATURE_HEADER.lower()],
        direct_body,
        int(datetime.now(UTC).timestamp()),
    )


@pytest.mark.parametrize(
    "answer",
    [
        _response(b"{}", f"Content-Length: {MAX_RESPONSE_BYTES + 1}"),
        _response(
            b"".join(f"{0x4000:x}\r\n".encode() + b"x" * 0x4000 + b"\r\n" for _ in range(17)) + b"0\r\n\r\n",
            "Transfer-Encoding: chunked",
        ),
    ],
    ids=["declared", "read"],
)
async def test_an_answer_past_the_limit_is_refused(answer: bytes) -> None:
    async with _lender(answer) as (base, _), lender_client(DestinationGuard(LOOPBACK_NETWORKS)) as client:
        with pytest.raises(ProviderProtocolError, match="exceeds"):
            await _adapter(base, client).quote(REQUEST)


async def test_a_redirect_is_not_followed_to_where_it_points() -> None:
    """A lender answering 307 to another address (here a second loopback server that would answer a good quote): the
    quote fails as the lender's and nothing reaches the target, on the direct path and through httpx's ``send``."""
    async with _lender(_response(_quote_answer())) as (target, reached):
        moved = f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}/v1/quotes\r\nContent-Length: 0\r\n\r\n"
        guard = DestinationGuard(LOOPBACK_NETWORKS)
        async with _lender(moved.encode()) as (base, asked), lender_client(guard) as direct:
            through = httpx.AsyncClient(transport=PinnedTransport(guard))
            async with through:
                for client in (direct, through):
                    with pytest.raises(ProviderProtocolError, match="307"):
                        await _adapter(base, client).quote(REQUEST)
    assert len(asked) == 2
    assert reached == [], "the redirect's target was never asked"


async def test_a_compressed_answer_is_decoded() -> None:
    compressed = gzip.compress(_quote_answer())
    client = lender_client(DestinationGuard(LOOPBACK_NETWORKS))
    async with _lender(_response(compressed, "Content-Encoding: gzip")) as (base, _), client:
        offers = await _adapter(base, client).quote(REQUEST)
    assert not isinstance(offers, Decline)
    assert offers[0].provider_ref == "bank-1"


async def test_a_lender_not_there_or_not_answering_fails_as_before() -> None:
    async with lender_client(DestinationGuard(LOOPBACK_NETWORKS)) as client:
        async with _lender(b"") as (base, _):
            pass  # closed: nothing listens there any more
        with pytest.raises(ProviderUnavailable, match="ConnectError"):
            await _adapter(base, client).quote(REQUEST)
        async with _lender(_response(_quote_answer()), hang=True) as (base, seen):
            with pytest.raises(ProviderTimeout, match="ReadTimeout"):
                await _adapter(base, client, timeout=0.2).quote(REQUEST)
            assert len(seen) == 1
    with pytest.raises(RuntimeError, match="closed"):
        await client.exchange("GET", httpx.URL(f"{base}/v1/health"), {}, b"", httpx.Timeout(1.0), 100)
