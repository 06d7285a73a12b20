"""The lender transport's kept-socket backend: a live keep-alive connection is reused, and one the lender closed is
seen as closed (its socket readable) and replaced, not written to."""

from __future__ import annotations

import asyncio

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
