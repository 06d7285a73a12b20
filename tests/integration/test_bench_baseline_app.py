"""bench.baseline_app over real HTTP against simulated lenders: it answers a credit request (201) only when every
lender call returned — a request with a lender call failed did less work than the platform's, and is not an answer."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bench.baseline_app import create_app
from chain.devnet import free_port
from providers.sim.fleet import LatencySpec, SimLender, http_lender_settings
from providers.sim.lender import create_sim_app
from tests.support.served import served

pytestmark = pytest.mark.integration

FLEET = [SimLender(lender_id=f"sim-lender-{n:02d}", latency=LatencySpec(distribution="fixed", ms=5)) for n in range(3)]
REQUEST = {"amount": "1500.00", "asset": "USDC", "term_days": 30}


@pytest.fixture
def lenders() -> Iterator[list[dict[str, object]]]:
    with served(create_sim_app(FLEET), free_port()) as url:
        yield http_lender_settings(url, FLEET)


def _ask(lenders: list[dict[str, object]]) -> httpx.Response:
    with served(create_app(lenders), free_port()) as url:
        return httpx.post(f"{url}/v1/credit-requests", json=REQUEST, timeout=30)


def test_every_lender_call_returned_is_an_answer(lenders: list[dict[str, object]]) -> None:
    answer = _ask(lenders)
    assert answer.status_code == 201
    assert answer.json() == {"quotes": 3}


def test_a_failed_lender_call_is_not_an_answer(lenders: list[dict[str, object]]) -> None:
    lenders[1]["secret"] = "not-the-lender-secret"  # the lender refuses the call's signature
    answer = _ask(lenders)
    assert answer.status_code == 502
    assert "1 of 3 lender calls failed" in answer.json()["detail"]
