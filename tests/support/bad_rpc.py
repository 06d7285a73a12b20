"""A loopback JSON-RPC stub that answers ``eth_chainId`` right and everything else badly, with HTTP 200: what a
gateway or load balancer in front of a sick node sends (an HTML error page, an empty or truncated body, JSON of
another shape), or a node's own answer of the wrong shape (a null block)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from chain.devnet import LOOPBACK, free_port

#: HTTP 200 bodies that are not JSON-RPC answers, by what they are
BAD_BODIES: dict[str, bytes] = {
    "html": b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    "empty": b"",
    "truncated": b'{"jsonrpc": "2.0", "id": 1, "resu',
    "not JSON-RPC": b'{"status": "ok"}',
    "a list to a request": b'[{"jsonrpc": "2.0", "id": 1, "result": "0x1"}]',
}

#: answers a stub builds from the request: the node's own shape, wrong
Answer = bytes | Callable[[dict[str, Any]], Any]


class BadRpc:
    """The stub's URL, what it answers besides ``eth_chainId`` (``answer``: raw bytes, or a function of the request
    whose result is sent as JSON) and the methods it was asked, in order (a batch's as one entry, ``"batch"``)."""

    def __init__(self, url: str, answer: Answer) -> None:
        self.url = url
        self.answer = answer
        self.asked: list[str] = []


@asynccontextmanager
async def bad_rpc(chain_id: int, answer: Answer = BAD_BODIES["html"]) -> AsyncIterator[BadRpc]:
    """A stub on a free loopback port serving ``chain_id``, answering every other call with ``answer``."""
    port = free_port()
    stub = BadRpc(f"http://{LOOPBACK}:{port}", answer)

    async def handle(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        stub.asked.append(body["method"] if isinstance(body, dict) else "batch")
        if isinstance(body, dict) and body["method"] == "eth_chainId":
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": hex(chain_id)})
        if isinstance(stub.answer, bytes):
            return web.Response(body=stub.answer, status=200, content_type="text/html")
        return web.json_response(stub.answer(body))

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        yield stub
    finally:
        await runner.cleanup()
