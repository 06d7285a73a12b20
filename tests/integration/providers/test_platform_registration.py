"""The running platform (API in its own process, built by ``build_providers``): a lender an admin registers through
the API is asked by the very next credit request's fan-out, and its own key then reads its health; the listing
shows every provider with where it came from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.signers import devnet_account
from providers.sim.fleet import SimLender, lender_url
from tests.integration.providers.support import SECRET, sim_server
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform, running_platform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def platform_and_lender(
    devnet_chains: dict[str, DeployedChain], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningPlatform, str]]:
    lender = SimLender(lender_id="late-bank", secret=SECRET)
    with (
        sim_server([lender], Path(tmp_path_factory.mktemp("late-sim"))) as sim,
        running_platform(devnet_chains, tmp_path_factory.mktemp("platform-providers")) as platform,
    ):
        yield platform, sim


def test_a_lender_registered_through_the_api_quotes_in_the_next_request(
    platform_and_lender: tuple[RunningPlatform, str],
) -> None:
    platform, sim = platform_and_lender
    with platform.client(platform.admin_key) as admin:
        created = admin.post(
            "/v1/providers",
            json={
                "provider_id": "late-bank",
                "kind": "http",
                "config": {"base_url": lender_url(sim, "late-bank"), "secret": SECRET},
                "capabilities": {"assets": ["USDC"]},
            },
        )
        assert created.status_code == 201, created.text
        listed = admin.get("/v1/providers").json()["providers"]
    sources = {p["provider_id"]: p["source"] for p in listed}
    assert sources["late-bank"] == "api"
    assert sources["sim-bank"] == "settings"
    assert sources["pool:ethereum-local:USDC"] == "deployment"
    assert all(p["breaker"] == "closed" for p in listed)

    borrower = platform.onboard(devnet_account(7).address)
    with platform.client(borrower) as client:
        response = client.post(
            "/v1/credit-requests",
            json={
                "amount": "1500.00",
                "asset": "USDC",
                "term_days": 30,
                "collateral": {"asset": "WETH", "amount": "1.0"},
            },
        )
    assert response.status_code == 201, response.text
    assert {"late-bank", "sim-bank"} <= {quote["provider_id"] for quote in response.json()["quotes"]}

    provider_key = created.json()["api_key"]
    with platform.client(provider_key) as own:
        health = own.get("/v1/providers/late-bank/health")
        other = own.get("/v1/providers/sim-bank/health")
    assert health.status_code == 200, health.text
    assert health.json()["breaker"]["state"] == "closed"
    assert health.json()["total_calls"] >= 1
    assert other.status_code == 404
