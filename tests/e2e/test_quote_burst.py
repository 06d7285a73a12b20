"""A burst of concurrent credit requests with a short fan-out deadline leaves nothing broken: the deadline cancels
lender calls and pool reads on purpose, and afterwards a request still gets every pool's quote and the borrower's
on-chain history on all three chains, with no RPC breaker open (issue 12: the RPC wedge)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chain.signers import devnet_account
from providers.sim.fleet import LatencySpec, SimLender
from tests.support.devnet import DeployedChain
from tests.support.platform import LENDER_SECRET, RunningPlatform, running_platform

pytestmark = pytest.mark.e2e

BORROWER = devnet_account(8)
REQUEST = {"amount": "1500.00", "asset": "USDC", "term_days": 30, "collateral": {"asset": "WETH", "amount": "1.0"}}
CONCURRENCY = 30
BURST_SECONDS = 4.0
DEADLINE_SECONDS = 0.25  # the fan-out deadline: under this load, many lender calls and pool reads outlive it
PROVIDER_RESET_SECONDS = 1.0


@pytest.fixture(scope="module")
def platform(
    devnet_chains: dict[str, DeployedChain], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    # A lender that answers on either side of the deadline, so cancellations happen on every request.
    fleet = [
        SimLender(
            lender_id="sim-bank",
            secret=LENDER_SECRET,
            latency=LatencySpec(distribution="uniform", low_ms=50, high_ms=450),
        )
    ]
    settings = {
        "CREDITMESH_FANOUT_DEADLINE_SECONDS": str(DEADLINE_SECONDS),
        "CREDITMESH_VELOCITY_PER_BORROWER": "100000",
        "CREDITMESH_VELOCITY_PER_WALLET": "100000",
        # a provider breaker opened by the burst's timeouts closes soon after it; the RPC breakers must never open
        "CREDITMESH_PROVIDER_RESILIENCE__RESET_TIMEOUT_SECONDS": str(PROVIDER_RESET_SECONDS),
    }
    with running_platform(devnet_chains, tmp_path_factory.mktemp("burst"), fleet=fleet, settings=settings) as running:
        yield running


async def _burst(platform: RunningPlatform, key: str) -> Counter[int]:
    statuses: Counter[int] = Counter()
    end = time.monotonic() + BURST_SECONDS
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=platform.api_url, headers={"X-API-Key": key}, timeout=60, limits=limits
    ) as client:

        async def borrower() -> None:
            while time.monotonic() < end:
                response = await client.post("/v1/credit-requests", json=REQUEST)
                statuses[response.status_code] += 1

        await asyncio.gather(*(borrower() for _ in range(CONCURRENCY)))
    return statuses


def _rpc_breakers(platform: RunningPlatform) -> dict[str, str]:
    health = httpx.get(f"{platform.api_url}/health", headers={"X-API-Key": platform.admin_key}, timeout=30).json()
    return {rpc["url"]: rpc["breaker"] for chain in health["chains"].values() for rpc in chain["rpc"]}


def test_a_burst_leaves_every_pool_and_the_onchain_history_readable(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    key = platform.onboard(BORROWER.address)
    statuses = asyncio.run(_burst(platform, key))
    assert statuses[201] >= CONCURRENCY, statuses  # the burst was served, not refused
    assert not [code for code in statuses if code >= 500], statuses
    time.sleep(PROVIDER_RESET_SECONDS + 0.5)

    breakers = _rpc_breakers(platform)
    assert len(breakers) == len(devnet_chains)
    assert set(breakers.values()) == {"closed"}, breakers
    with platform.client(key) as client:
        response = client.post("/v1/credit-requests", json=REQUEST)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    pool_chains = {quote["chain"] for quote in body["quotes"] if quote["kind"] == "pool"}
    assert pool_chains == set(devnet_chains), body["provider_outcomes"]
    assert body["risk"]["onchain_chains_skipped"] == {}
