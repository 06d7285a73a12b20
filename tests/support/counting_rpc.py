"""A counting JSON-RPC proxy in front of a node, served over real HTTP in a thread of the test's process (so the
platform's processes reach it while the test blocks): it counts every method it is asked (each call of a batch) and,
while ``refusing``, answers HTTP 429 as a hosted RPC plan past its rate does."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI, Request, Response

from chain.devnet import free_port
from tests.support.served import served


@dataclass
class CountingRpc:
    port: int
    asked: Counter[str] = field(default_factory=Counter)
    refusing: bool = False


@contextmanager
def counting_rpc(node_url: str) -> Iterator[CountingRpc]:
    """A proxy of ``node_url`` on a free loopback port until the block ends."""
    app = FastAPI()
    proxy = CountingRpc(free_port())

    @app.post("/")
    async def forward(request: Request) -> Response:
        body = await request.body()
        calls = json.loads(body)
        for call in calls if isinstance(calls, list) else [calls]:
            proxy.asked[str(call.get("method"))] += 1
        if proxy.refusing:
            return Response(status_code=429)
        async with httpx.AsyncClient(timeout=30) as node:
            answer = await node.post(node_url, content=body, headers={"Content-Type": "application/json"})
        return Response(answer.content, status_code=answer.status_code, media_type="application/json")

    with served(app, proxy.port):
        yield proxy
