"""``/readyz`` and ``/metrics`` over real HTTP (issue 17): the platform on a PostgreSQL, a Redis and one chain's anvil
of its own (a fork of the session's devnet, so the contracts are there), which the test stops — Redis and the chain
reported degraded with 200, the database failing with 503 naming it; ``/metrics`` in the Prometheus text format with
requests by route template and status and every chain RPC endpoint's breaker. And a flood of ``/readyz`` calls, one
after another and at once, behind counting proxies of the chains' RPC: about one probe of each chain (and one Redis
write) per ``CREDITMESH_READINESS_CACHE_SECONDS``, and probes that a chain's RPC refuses open no breaker."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace

import httpx
import pytest
import redis

from chain.config import LOCAL_CHAINS
from chain.devnet import start_devnet
from tests.support.counting_rpc import counting_rpc
from tests.support.devnet import DeployedChain
from tests.support.platform import running_platform
from tests.support.services import postgres_server, redis_server

pytestmark = pytest.mark.e2e

OWN_CHAIN = "arbitrum-local"  # served by an anvil of the test's own, stopped by it


def test_readiness_fails_only_for_the_database_and_metrics_count_by_route(
    devnet_chains: dict[str, DeployedChain], tmp_path_factory: pytest.TempPathFactory
) -> None:
    with ExitStack() as services:
        database, redis = ExitStack(), ExitStack()  # each closed by the test to stop it, else at the end
        services.push(database)
        services.push(redis)
        database_url = database.enter_context(postgres_server(tmp_path_factory.mktemp("readyz-pg")))
        redis_url = redis.enter_context(redis_server(tmp_path_factory.mktemp("readyz-redis")))
        shared = devnet_chains[OWN_CHAIN]
        local = next(chain for chain in LOCAL_CHAINS if chain.name == OWN_CHAIN)
        anvil = start_devnet(local, port=0, fork_url=shared.devnet.rpc_url)
        services.callback(anvil.stop)
        chains = devnet_chains | {OWN_CHAIN: replace(shared, devnet=anvil)}
        platform = services.enter_context(
            running_platform(
                chains,
                tmp_path_factory.mktemp("readyz"),
                database_url,
                # every call probes afresh: each stop below is seen by the next call, not a few seconds later
                settings={"CREDITMESH_REDIS_URL": redis_url, "CREDITMESH_READINESS_CACHE_SECONDS": "0"},
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
            assert degraded.json()["checks"]["chains"] == dict.fromkeys(devnet_chains, "ok")

            anvil.stop()  # one chain's node stops: that chain degraded, the process still ready for the others
            one_chain_down = client.get("/readyz")
            assert one_chain_down.status_code == 200, one_chain_down.text
            assert one_chain_down.json()["status"] == "degraded"
            chains_seen = one_chain_down.json()["checks"]["chains"]
            assert chains_seen == dict.fromkeys(devnet_chains, "ok") | {OWN_CHAIN: "degraded"}
            assert one_chain_down.json()["checks"]["database"] == "ok"

            database.close()  # the database stops: not ready, naming it
            down = client.get("/readyz")
            assert down.status_code == 503, down.text
            assert down.headers["content-type"] == "application/problem+json"
            assert down.json()["failing"] == ["database"]
            assert down.json()["checks"]["chains"] == dict.fromkeys(devnet_chains, "ok") | {OWN_CHAIN: "degraded"}


READINESS_CACHE_SECONDS = 0.5


def _sets(observer: redis.Redis) -> int:
    """SET commands the Redis server has run (``/readyz``'s probe write is one)."""
    return int(observer.info("commandstats").get("cmdstat_set", {}).get("calls", 0))


def test_a_flood_of_readiness_calls_probes_each_chain_about_once_per_interval_and_opens_no_breaker(
    devnet_chains: dict[str, DeployedChain], redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``/readyz`` needs no key and read every chain's head block (and wrote to Redis) on every call, through the
    breakers real traffic uses: 100 calls were 300 RPC calls, and against an RPC plan answering 429 past its rate a
    flood opened every chain's breakers, so borrowers lost every pool quote. Now one probe serves every caller of its
    interval, and a probe the RPC refuses leaves the breaker closed."""
    with ExitStack() as services:
        proxies = {
            name: services.enter_context(counting_rpc(chain.devnet.rpc_url)) for name, chain in devnet_chains.items()
        }
        chains = {
            name: replace(chain, devnet=replace(chain.devnet, port=proxies[name].port))
            for name, chain in devnet_chains.items()
        }
        settings = {
            "CREDITMESH_REDIS_URL": redis_url,
            "CREDITMESH_READINESS_CACHE_SECONDS": str(READINESS_CACHE_SECONDS),
        }
        platform = services.enter_context(
            running_platform(chains, tmp_path_factory.mktemp("readyz-flood"), settings=settings)
        )
        observer = services.enter_context(redis.Redis.from_url(redis_url))
        with httpx.Client(base_url=platform.api_url, timeout=30) as client:
            assert client.get("/readyz").json()["status"] == "ready"
            for proxy in proxies.values():
                proxy.asked.clear()
            writes, started = _sets(observer), time.monotonic()
            for _ in range(40):
                assert client.get("/readyz").status_code == 200
            with ThreadPoolExecutor(16) as pool:
                statuses = list(
                    pool.map(lambda _: httpx.get(f"{platform.api_url}/readyz", timeout=30).status_code, range(64))
                )
            elapsed = time.monotonic() - started
            assert statuses == [200] * 64
            # a probe starts at most once per interval (one may be under way at each end): 104 calls, a few probes
            most = int(elapsed / READINESS_CACHE_SECONDS) + 2
            for name, proxy in proxies.items():
                assert proxy.asked["eth_getBlockByNumber"] <= most, (name, dict(proxy.asked), elapsed)
            assert _sets(observer) - writes <= most, elapsed

            refusing = proxies["ethereum-local"]
            refusing.refusing = True  # its RPC plan answers 429 to everything: each probe of the chain fails
            for _ in range(4):  # more failing probes than the breaker's fail_max (3)
                time.sleep(READINESS_CACHE_SECONDS * 1.2)
                seen = client.get("/readyz")
                assert seen.status_code == 200, seen.text
                assert seen.json()["checks"]["chains"]["ethereum-local"] == "degraded"
            refusing.refusing = False
            text = client.get("/metrics").text
            for chain in devnet_chains:
                assert f'creditmesh_chain_rpc_breaker_state{{chain="{chain}",endpoint="0",state="closed"}} 1.0' in text
