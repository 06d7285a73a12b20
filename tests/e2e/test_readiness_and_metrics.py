"""``/readyz`` and ``/metrics`` over real HTTP (issue 17): the platform on a PostgreSQL and a Redis of its own, which
the test stops — Redis reported degraded with 200, the database failing with 503 naming it; ``/metrics`` in the
Prometheus text format with requests by route template and status and every chain RPC endpoint's breaker."""

from __future__ import annotations

from contextlib import ExitStack

import httpx
import pytest

from tests.support.devnet import DeployedChain
from tests.support.platform import running_platform
from tests.support.services import postgres_server, redis_server

pytestmark = pytest.mark.e2e


def test_readiness_fails_only_for_the_database_and_metrics_count_by_route(
    devnet_chains: dict[str, DeployedChain], tmp_path_factory: pytest.TempPathFactory
) -> None:
    with ExitStack() as services:
        database, redis = ExitStack(), ExitStack()  # each closed by the test to stop it, else at the end
        services.push(database)
        services.push(redis)
        database_url = database.enter_context(postgres_server(tmp_path_factory.mktemp("readyz-pg")))
        redis_url = redis.enter_context(redis_server(tmp_path_factory.mktemp("readyz-redis")))
        platform = services.enter_context(
            running_platform(
                devnet_chains,
                tmp_path_factory.mktemp("readyz"),
                database_url,
                settings={"CREDITMESH_REDIS_URL": redis_url},
            )
        )
        with httpx.Client(base_url=platform.api_url, timeout=30) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json() == {
                "status": "ready",
                "checks": {
                    "database": "ok",
                    "sanctions_lists": "ok",
                    "redis": "ok",
                    "chains": dict.fromkeys(devnet_chains, "ok"),
                },
            }
            client.get("/v1/quotes/some-quote")  # 401: counted under its route template, not its path

            scraped = client.get("/metrics")
            assert scraped.status_code == 200
            assert scraped.headers["content-type"].startswith("text/plain; version=")
            text = scraped.text
            assert 'creditmesh_http_requests_total{method="GET",route="/readyz",status="200"} 1.0' in text
            assert 'route="/v1/quotes/{quote_id}",status="401"' in text
            assert "some-quote" not in text
            assert 'creditmesh_http_request_seconds_bucket{le="0.005",method="GET",route="/readyz"}' in text
            for chain in devnet_chains:
                assert f'creditmesh_chain_rpc_breaker_state{{chain="{chain}",endpoint="0",state="closed"}} 1.0' in text

            redis.close()  # Redis stops: degraded, still in the load balancer
            degraded = client.get("/readyz")
            assert degraded.status_code == 200, degraded.text
            assert degraded.json()["status"] == "degraded"
            assert degraded.json()["checks"]["redis"] == "degraded"
            assert degraded.json()["checks"]["database"] == "ok"

            database.close()  # the database stops: not ready, naming it
            down = client.get("/readyz")
            assert down.status_code == 503, down.text
            assert down.headers["content-type"] == "application/problem+json"
            assert down.json()["failing"] == ["database"]
            assert down.json()["checks"]["chains"] == dict.fromkeys(devnet_chains, "ok")
