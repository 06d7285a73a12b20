"""A loopback JSON-RPC forwarder that counts what passes through it, by method: put between the API and a devnet
(the chain's ``rpc_urls`` pointed at it) to count the JSON-RPC calls an accept makes (``bench/scale_loans.py
--count-rpc``). Each call of a JSON-RPC batch counts as a call; ``http`` counts the HTTP requests. It adds a hop, so a
run that counts is for the counts, not for the rates."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web

HTTP = "http"


class RpcCounter:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self._counts: Counter[str] = Counter()
        self._peers: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.url = ""
        self._thread = threading.Thread(target=self._serve, name="rpc-count", daemon=True)

    def __enter__(self) -> RpcCounter:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the JSON-RPC counter did not start")
        return self

    def __exit__(self, *_: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)

    def connections(self) -> int:
        """The client connections (TCP peers) seen so far."""
        with self._lock:
            return len(self._peers)

    def _count(self, body: bytes, peer: tuple[str, int] | None) -> None:
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            return
        calls = parsed if isinstance(parsed, list) else [parsed]
        with self._lock:
            self._counts[HTTP] += 1
            if peer is not None:
                self._peers.add(peer)
            for call in calls:
                if isinstance(call, dict):
                    self._counts[str(call.get("method"))] += 1

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with aiohttp.ClientSession() as session:

            async def forward(request: web.Request) -> web.Response:
                body = await request.read()
                peer = request.transport.get_extra_info("peername") if request.transport else None
                self._count(body, None if peer is None else (str(peer[0]), int(peer[1])))
                async with session.post(
                    self.upstream, data=body, headers={"Content-Type": "application/json"}
                ) as answer:
                    return web.Response(body=await answer.read(), status=answer.status, content_type="application/json")

            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_post("/", forward)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert isinstance(server, asyncio.base_events.Server)
            port = server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()
