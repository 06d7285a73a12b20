"""``creditmesh serve --processes 2`` on one real PostgreSQL and Redis, behind its local balancer: requests are
served by both processes in turn (each names itself in ``X-Creditmesh-Process``; the balancer hands every request to
the next process, on a kept-alive client connection too), and a lender an admin registers through one of them is
quoted by the other in the next credit request it serves."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.signers import devnet_account
from providers.sim.fleet import SimLender, lender_url
from tests.integration.providers.support import SECRET, sim_server
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform, running_platform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # a platform of two processes on a loaded machine

HEADER = "x-creditmesh-process"
REQUEST = {"amount": "1500.00", "asset": "USDC", "term_days": 30, "collateral": {"asset": "WETH", "amount": "1.0"}}


@pytest.fixture(scope="module")
def two_processes(
    devnet_chains: dict[str, DeployedChain],
    tmp_path_factory: pytest.TempPathFactory,
    postgres_schema: Callable[[str], str],
    redis_url: str,
) -> Iterator[tuple[RunningPlatform, str]]:
    lender = SimLender(lender_id="late-bank", secret=SECRET)
    with (
        sim_server([lender], Path(tmp_path_factory.mktemp("late-sim"))) as sim,
        running_platform(
            devnet_chains,
            tmp_path_factory.mktemp("two-processes"),
            database_url=postgres_schema("serve_processes"),
            settings={"CREDITMESH_REDIS_URL": redis_url},
            processes=2,
        ) as platform,
    ):
        yield platform, sim


def _call(platform: RunningPlatform, method: str, path: str, key: str, body: Any = None) -> httpx.Response:
    """One request with ``key`` (a client of its own: the balancer would hand it to the next process either way)."""
    with platform.client(key) as client:
        return client.request(method, path, json=body)


def test_both_processes_serve_and_a_registration_through_one_is_quoted_by_the_other(
    two_processes: tuple[RunningPlatform, str],
) -> None:
    platform, sim = two_processes
    seen: set[str] = set()
    deadline = time.monotonic() + 120  # the balancer answers once one process is up; the other may still start
    while seen != {"api-1", "api-2"}:
        assert time.monotonic() < deadline, f"only {seen} answered"
        answer = httpx.get(f"{platform.api_url}/healthz", timeout=5)
        if answer.status_code == 200:
            seen.add(answer.headers[HEADER])
        else:
            time.sleep(0.2)

    created = _call(
        platform,
        "POST",
        "/v1/providers",
        platform.admin_key,
        {
            "provider_id": "late-bank",
            "kind": "http",
            "config": {"base_url": lender_url(sim, "late-bank"), "secret": SECRET},
            "capabilities": {"assets": ["USDC"]},
        },
    )
    assert created.status_code == 201, created.text
    registered_by = created.headers[HEADER]

    borrower = platform.onboard(devnet_account(8).address)
    quoted_by: dict[str, set[str]] = {}
    for _ in range(2):  # two requests in a row: one to each process
        response = _call(platform, "POST", "/v1/credit-requests", borrower, REQUEST)
        assert response.status_code == 201, response.text
        providers = {quote["provider_id"] for quote in response.json()["quotes"]}
        quoted_by.setdefault(response.headers[HEADER], set()).update(providers)
    assert set(quoted_by) == {"api-1", "api-2"}, "round robin over the two processes"
    other = ({"api-1", "api-2"} - {registered_by}).pop()
    assert {"late-bank", "sim-bank"} <= quoted_by[other], "the other process quotes the lender registered through one"
