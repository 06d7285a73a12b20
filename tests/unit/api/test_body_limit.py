"""Every request body is capped before anything reads it (FastAPI parses a JSON body before the API key is
checked): a declared or streamed body past the cap is a 413 problem, and the route never runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.body_limit import BodyLimit

pytestmark = pytest.mark.unit

CAP = 1_024


def _app(calls: list[int]) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodyLimit, max_bytes=CAP)

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, int]:
        calls.append(len(body["pad"]))
        return {"size": len(body["pad"])}

    return app


async def _post(content: bytes | AsyncIterator[bytes], calls: list[int]) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(calls))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        return await client.post("/echo", content=content, headers={"Content-Type": "application/json"})


async def test_a_body_within_the_cap_passes() -> None:
    calls: list[int] = []
    assert (await _post(b'{"pad": "' + b"x" * 900 + b'"}', calls)).json() == {"size": 900}


async def test_a_declared_body_past_the_cap_is_refused_unread() -> None:
    calls: list[int] = []
    refused = await _post(b'{"pad": "' + b"x" * 2_000 + b'"}', calls)
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == f"the request body is larger than {CAP} bytes"
    assert calls == []


async def test_a_streamed_body_past_the_cap_is_cut_off() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"pad": "'
        for _ in range(100):
            yield b"x" * 512
        yield b'"}'

    calls: list[int] = []
    refused = await _post(chunks(), calls)
    assert refused.status_code == 413
    assert calls == []
