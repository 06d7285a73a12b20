"""An ASGI app served over real HTTP on a loopback port, in a thread of the test's process, for as long as a block
runs: for tests whose other parts (a simulated provider's webhook) must reach the app over the network. And an aiohttp
handler of POSTs served in the test's own event loop (a JSON-RPC node or proxy that misbehaves as hosted nodes do)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import uvicorn
from aiohttp import web
from fastapi import FastAPI

from chain.devnet import LOOPBACK, free_port


@contextmanager
def served(app: FastAPI, port: int) -> Iterator[str]:
    """``app`` over HTTP on loopback ``port`` (in a thread) until the block ends; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), f"the server on port {port} stopped"
        assert time.monotonic() < deadline, f"no server on port {port}"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@asynccontextmanager
async def posts_served(
    handle: Callable[[web.Request], Awaitable[web.StreamResponse]], path: str = "/"
) -> AsyncIterator[str]:
    """``handle`` answering POSTs to ``path`` over HTTP on a free loopback port, in the test's own event loop (so it
    answers while the test awaits), until the block ends; yields the server's URL (``http://127.0.0.1:PORT``)."""
    app = web.Application()
    app.router.add_post(path, handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        await runner.cleanup()
