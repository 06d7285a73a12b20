"""Lender calls keep no cookies: cookies are scoped by host, not port, so a cookie one lender sets would otherwise be
sent to another lender on the same host. Two real loopback lenders on one host, different ports."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from providers.destinations import LOOPBACK_NETWORKS, DestinationGuard, lender_client

pytestmark = pytest.mark.unit


async def _lender(set_cookie: bool) -> tuple[asyncio.Server, list[bytes]]:
    """A lender on 127.0.0.1 that records each request's head; the first sets a session cookie."""
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                heads.append((await reader.readuntil(b"\r\n\r\n")).lower())
                cookie = b"Set-Cookie: session=lender-a-secret; Path=/\r\n" if set_cookie else b""
                writer.write(b"HTTP/1.1 200 OK\r\n" + cookie + b"Content-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0), heads


async def _exchange(client: httpx.AsyncClient) -> tuple[list[bytes], list[bytes]]:
    server_a, heads_a = await _lender(set_cookie=True)
    server_b, heads_b = await _lender(set_cookie=False)
    async with server_a, server_b, client:
        port_a = server_a.sockets[0].getsockname()[1]
        port_b = server_b.sockets[0].getsockname()[1]
        first = await client.post(f"http://127.0.0.1:{port_a}/v1/quote", json={})
        assert first.headers["set-cookie"].startswith("session=")  # the lender did set one
        await client.post(f"http://127.0.0.1:{port_b}/v1/quote", json={})
        await client.post(f"http://127.0.0.1:{port_a}/v1/quote", json={})
    return heads_a, heads_b


async def test_a_cookie_one_lender_sets_is_sent_to_no_lender() -> None:
    client = lender_client(DestinationGuard(LOOPBACK_NETWORKS))
    heads_a, heads_b = await _exchange(client)
    assert len(heads_a) == 2
    assert len(heads_b) == 1
    assert not any(b"cookie:" in head for head in heads_a + heads_b)
    assert len(client.cookies) == 0


async def test_a_plain_client_would_send_it_to_the_other_port() -> None:
    """The leak the lender client closes, shown on httpx's default client (what the test above would catch)."""
    _, heads_b = await _exchange(httpx.AsyncClient(timeout=10))
    assert b"cookie: session=lender-a-secret" in heads_b[0]


def test_a_lender_client_takes_no_cookies() -> None:
    client = lender_client(DestinationGuard(LOOPBACK_NETWORKS))
    with pytest.raises(ValueError, match="no cookies"):
        client.cookies = {"session": "x"}
