"""The running platform (API in its own process, built by ``build_providers``): a lender an admin registers through
the API is asked by the very next credit request's fan-out, and its own key then reads its health; the listing
shows every provider with where it came from. A lender's own text in an answer the platform refuses never reaches
the borrower in ``provider_outcomes[].detail``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from chain.devnet import free_port
from chain.signers import devnet_account
from providers.sim.fleet import SimLender, lender_url
from tests.integration.providers.support import SECRET, sim_server
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform, running_platform
from tests.support.served import served

#: the credit request every test here makes
REQUEST = {"amount": "1500.00", "asset": "USDC", "term_days": 30, "collateral": {"asset": "WETH", "amount": "1.0"}}

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
            json=REQUEST,
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


#: a lender's own words, written to reach a borrower through the detail of its refused answer
LENDER_TEXT = "URGENT-application-on-hold.call-555-0100.creditmesh-verify.example"


def _rogue_lender(quote: dict[str, Any]) -> FastAPI:
    """A lender that answers every call with ``quote`` (its health check too)."""
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def answer() -> dict[str, Any]:
        return quote

    return app


def test_a_lenders_own_text_in_a_refused_answer_never_reaches_the_borrower(
    platform_and_lender: tuple[RunningPlatform, str],
) -> None:
    """A lender's quote answer refused for its ``protocol_version`` (any string, which the refusal quoted) or for
    one of its offers (named by its ``offer_ref``, 128 characters of the lender's choosing) put the lender's text
    in ``provider_outcomes[].detail``, before the borrower (docs/security.md: a lender must not reach a borrower
    with its raw answers)."""
    platform, _ = platform_and_lender
    expires = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    offer = {"offer_ref": "r1", "rate_bps": 900, "origination_fee": 0, "expires_at": expires}
    rogues = {
        "rogue-version": {"protocol_version": f"URGENT: your application is on hold: {LENDER_TEXT}", "offers": [offer]},
        "rogue-ref": {"protocol_version": "1", "offers": [offer | {"offer_ref": LENDER_TEXT, "rate_bps": 900.5}]},
    }
    ports = {provider_id: free_port() for provider_id in rogues}
    with (
        served(_rogue_lender(rogues["rogue-version"]), ports["rogue-version"]),
        served(_rogue_lender(rogues["rogue-ref"]), ports["rogue-ref"]),
    ):
        with platform.client(platform.admin_key) as admin:
            for provider_id, port in ports.items():
                registered = admin.post(
                    "/v1/providers",
                    json={
                        "provider_id": provider_id,
                        "kind": "http",
                        "config": {"base_url": f"http://127.0.0.1:{port}", "secret": SECRET},
                        "capabilities": {"assets": ["USDC"]},
                    },
                )
                assert registered.status_code == 201, registered.text
        borrower = platform.onboard(devnet_account(8).address)
        with platform.client(borrower) as client:
            response = client.post(
                "/v1/credit-requests",
                json=REQUEST,
            )
    assert response.status_code == 201, response.text
    outcomes = {o["provider_id"]: o for o in response.json()["provider_outcomes"]}
    assert set(rogues) <= set(outcomes), outcomes
    for provider_id in rogues:
        assert outcomes[provider_id]["outcome"] != "offered", outcomes[provider_id]
        assert LENDER_TEXT not in outcomes[provider_id]["detail"], outcomes[provider_id]
        assert "URGENT" not in outcomes[provider_id]["detail"], outcomes[provider_id]
