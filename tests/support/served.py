"""An ASGI app served over real HTTP on a loopback port, in a thread of the test's process, for as long as a block
runs: for tests whose other parts (a simulated provider's webhook) must reach the app over the network."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


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
