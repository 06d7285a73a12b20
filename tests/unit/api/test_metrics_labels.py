"""``/metrics``' labels are bounded whatever a client sends: a made-up HTTP method (which a server may pass on) is
counted as ``other``; it was its own label value, one new series per method a client made up."""

from __future__ import annotations

import secrets

import httpx
import pytest
from fastapi import FastAPI

from api import metrics

pytestmark = pytest.mark.unit


async def test_a_made_up_method_is_counted_as_other() -> None:
    app = FastAPI()
    app.add_middleware(metrics.RequestMetrics)
    app.include_router(metrics.router)
    made_up = f"BREW{secrets.token_hex(4).upper()}"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        assert (await client.request(made_up, "/metrics")).status_code == 405
        assert (await client.request("DELETE", "/metrics")).status_code == 405
        text = (await client.get("/metrics")).text
    assert made_up not in text
    assert 'creditmesh_http_requests_total{method="other",route="/metrics",status="405"}' in text
    assert 'creditmesh_http_requests_total{method="DELETE",route="/metrics",status="405"}' in text
