"""bench.quote_path's load client (bench.scale's too) over real HTTP: only answered credit requests (201) count in the
latencies and the throughput; a fast 503 is an error, never a request served."""

from __future__ import annotations

import asyncio
import os

import pytest
from fastapi import FastAPI, Response

from bench.quote_path import _load
from chain.devnet import free_port
from tests.support.served import served

pytestmark = pytest.mark.integration


def _shedding_app(answered: dict[str, int], started: list[bool]) -> FastAPI:
    """Answers one credit request in three (after 50 ms, as a lender-bound request would take); refuses the others
    at once with a 503, as a process shedding load does. Counts what it answered once the clock started."""
    app = FastAPI()
    seen = [0]

    @app.post("/v1/credit-requests")
    async def credit_request() -> Response:
        seen[0] += 1
        status = 201 if seen[0] % 3 == 0 else 503
        if status == 201:
            await asyncio.sleep(0.05)
        if started:
            answered[str(status)] = answered.get(str(status), 0) + 1
        return Response(status_code=status)

    return app


def test_a_503_is_counted_as_an_error_not_as_an_answer() -> None:
    answered: dict[str, int] = {}
    started: list[bool] = []
    with served(_shedding_app(answered, started), free_port()) as url:
        level = asyncio.run(_load(url, "key", 4, 1.5, os.getpid(), lambda: started.append(True)))

    assert answered["503"] > 0
    assert level.requests == answered["201"]
    assert level.errors == answered["503"]
    assert level.statuses == answered
    # the throughput is the answers' alone, and the percentiles are the answered requests' (each >= 50 ms)
    assert level.requests_per_second == pytest.approx(answered["201"] / level.seconds, rel=0.01)
    assert level.p50_ms >= 50
