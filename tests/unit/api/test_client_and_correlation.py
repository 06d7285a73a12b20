"""The API edge: a caller's correlation id is kept only when it is a plain token (else replaced, never echoed or
forwarded raw); the client address is the TCP peer unless that peer is a configured trusted proxy."""

from __future__ import annotations

import ipaddress
import logging

import httpx
import pytest
from fastapi import FastAPI, Request

from api import logs
from api.client import client_address
from api.logs import CORRELATION_HEADER, correlation_id

pytestmark = pytest.mark.unit

PROXY = [ipaddress.ip_network("10.0.0.0/8")]


def _app() -> FastAPI:
    app = FastAPI()
    logs.install(app)

    @app.get("/echo")
    async def echo(request: Request) -> dict[str, str | None]:
        return {"correlation_id": correlation_id.get(), "client": client_address(request, PROXY)}

    return app


async def _get(headers: dict[str, str], peer: str = "127.0.0.1") -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(), client=(peer, 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        return await client.get("/echo", headers=headers)


async def _get_raw(correlation: bytes) -> httpx.Response:
    """A header value as raw bytes (httpx would not encode a non-ASCII str)."""
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        return await client.get("/echo", headers=[(CORRELATION_HEADER.encode(), correlation)])


@pytest.mark.parametrize(
    "given", ["\u00e9t\u00e9".encode(), b"x" * 65, b"a b", b"a_b", b"<script>", ("x" * 6_000).encode()]
)
async def test_an_invalid_correlation_id_is_replaced(given: bytes) -> None:
    response = await _get_raw(given)
    assert response.status_code == 200
    used = response.json()["correlation_id"]
    assert used.encode() != given
    assert response.headers[CORRELATION_HEADER] == used
    assert len(used) == 36, "a fresh uuid4"


async def test_a_valid_correlation_id_is_kept() -> None:
    response = await _get({CORRELATION_HEADER: "req-42-ABC"})
    assert response.json()["correlation_id"] == "req-42-ABC"
    assert response.headers[CORRELATION_HEADER] == "req-42-ABC"


async def test_forwarded_for_is_read_only_from_a_trusted_proxy() -> None:
    forged = await _get({"X-Forwarded-For": "203.0.113.9"}, peer="198.51.100.7")
    assert forged.json()["client"] == "198.51.100.7", "an untrusted peer cannot name another client"
    proxied = await _get({"X-Forwarded-For": "203.0.113.9, 10.1.2.3"}, peer="10.0.0.2")
    assert proxied.json()["client"] == "203.0.113.9"
    missing = await _get({}, peer="10.0.0.2")
    assert missing.json()["client"] is None, "no header from the proxy: unknown, not the proxy's one shared bucket"


def test_httpx_request_lines_are_logged_only_at_debug() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        logs.configure_logging(logging.INFO)
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
        assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
        assert logging.getLogger("api").isEnabledFor(logging.INFO)
        logs.configure_logging(logging.DEBUG)
        assert logging.getLogger("httpx").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:], root.level = handlers, level
        logging.getLogger("httpx").setLevel(logging.NOTSET)
