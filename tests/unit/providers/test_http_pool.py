"""The lender transport (httpx over aiohttp's pool): a live keep-alive connection is reused, and one the lender closed
is seen as closed and replaced, not written to; aiohttp's errors reach the caller as httpx's."""

from __future__ import annotations

import asyncio
import gzip

import httpx
import pytest

from providers.http_pool import LenderTransport

pytestmark = pytest.mark.unit

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _lender(close_after_answer: bool) -> tuple[asyncio.Server, list[int], asyncio.Event]:
    connections: list[int] = []
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(ANSWER)
                await writer.drain()
                if close_after_answer:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()
        await writer.wait_closed()
        closed.set()

    return await asyncio.start_server(serve, "127.0.0.1", 0), connections, closed


@pytest.mark.parametrize("close_after_answer", [False, True])
async def test_a_kept_connection_is_reused_and_a_closed_one_replaced(close_after_answer: bool) -> None:
    server, connections, closed = await _lender(close_after_answer)
    port = server.sockets[0].getsockname()[1]
    async with server, httpx.AsyncClient(transport=LenderTransport(), timeout=10) as client:
        assert (await client.get(f"http://127.0.0.1:{port}/v1/quote")).text == "ok"
        if close_after_answer:
            await asyncio.wait_for(closed.wait(), 10)
        assert (await client.get(f"http://127.0.0.1:{port}/v1/quote")).text == "ok"
    assert len(connections) == (2 if close_after_answer else 1)


def test_the_transport_refuses_a_proxy() -> None:
    with pytest.raises(ValueError, match="proxy"):
        LenderTransport(proxy="http://127.0.0.1:3128")


async def _answering(answer: bytes, hang: bool = False) -> asyncio.Server:
    """A lender that reads one request and writes ``answer`` (then hangs if ``hang``) and closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        if hang:
            await asyncio.sleep(5)
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


@pytest.mark.parametrize(
    ("answer", "hang", "error"),
    [
        (b"", False, httpx.RemoteProtocolError),  # hung up without an answer
        (b"", True, httpx.ReadTimeout),  # no answer within the read timeout
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", False, httpx.RemoteProtocolError),  # a cut body
        (b"NOT HTTP\r\n\r\n", False, httpx.RemoteProtocolError),
    ],
)
async def test_aiohttp_errors_reach_the_caller_as_httpx_errors(answer: bytes, hang: bool, error: type) -> None:
    server = await _answering(answer, hang)
    port = server.sockets[0].getsockname()[1]
    async with server, httpx.AsyncClient(transport=LenderTransport(), timeout=httpx.Timeout(0.3)) as client:
        with pytest.raises(error):
            await client.get(f"http://127.0.0.1:{port}/v1/quote")


async def test_a_refused_connection_is_a_connect_error_and_a_compressed_body_is_decoded_by_httpx() -> None:
    server = await _answering(b"")
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    body = gzip.compress(b'{"ok": true}')
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\nSet-Cookie: a=b\r\n\r\n"
    answering = await _answering(head.encode() + body)
    async with answering, httpx.AsyncClient(transport=LenderTransport(), timeout=httpx.Timeout(5)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/v1/quote")
        response = await client.get(f"http://127.0.0.1:{answering.sockets[0].getsockname()[1]}/v1/quote")
        assert response.json() == {"ok": True}
        assert response.headers["Content-Encoding"] == "gzip", "the body came undecoded from aiohttp"
