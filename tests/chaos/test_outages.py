"""Outages under load, three API processes on one PostgreSQL and Redis (``slow``: ``make chaos``):

- Redis stopped: every process keeps serving credit requests and says ``degraded`` in ``/readyz``; Redis back,
  ``ready`` again;
- PostgreSQL restarted while accepts and credit requests are in flight: every answer is a success, a conflict or a
  clean 503 problem+json with ``Retry-After``; no accepted loan is lost (every loan opened on-chain has its record,
  one per quote) and the processes serve again by themselves;
- one anvil stopped: the other chains' pools are still quoted, the stopped chain's pool left out with its outcome
  named."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos.support import (
    REQUEST,
    RestartablePostgres,
    accept,
    borrower,
    credit_request,
    loans_by_quote,
    loans_opened,
    pool_quote,
    settled,
)
from tests.support.cluster import ApiCluster, StartCluster
from tests.support.devnet import DeployedChain, deployed_devnets
from tests.support.services import RestartableRedis

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]


def _ready(cluster: ApiCluster, index: int) -> dict[str, Any]:
    answer = httpx.get(f"{cluster.urls[index]}/readyz", timeout=60)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _request_everywhere(cluster: ApiCluster, key: str) -> list[int]:
    statuses = []
    for index in range(len(cluster.urls)):
        with cluster.client(index, key) as client:
            statuses.append(client.post("/v1/credit-requests", json=REQUEST).status_code)
    return statuses


# ---------------------------------------------------------------------------------------------- Redis


@pytest.fixture(scope="module")
def redis_cluster(start_cluster: StartCluster) -> Iterator[ApiCluster]:
    with start_cluster("chaos_redis") as running:
        yield running


def test_with_redis_stopped_every_process_serves_degraded_and_recovers_when_it_returns(
    redis_cluster: ApiCluster, devnet_chains: dict[str, DeployedChain], chaos_redis: RestartableRedis
) -> None:
    who = borrower(redis_cluster, devnet_chains["ethereum-local"], 0)
    assert _request_everywhere(redis_cluster, who.key) == [201] * 3
    assert {_ready(redis_cluster, i)["checks"]["redis"] for i in range(3)} == {"ok"}

    chaos_redis.stop()
    try:
        assert _request_everywhere(redis_cluster, who.key) == [201] * 3, "serving continues without Redis"
        deadline = time.monotonic() + 30  # /readyz answers from a probe up to CREDITMESH_READINESS_CACHE_SECONDS old
        while {_ready(redis_cluster, i)["status"] for i in range(3)} != {"degraded"}:
            assert time.monotonic() < deadline, "Redis stopped, but not seen as such"
            time.sleep(0.5)
    finally:
        chaos_redis.start()
    deadline = time.monotonic() + 60
    while {_ready(redis_cluster, i)["checks"]["redis"] for i in range(3)} != {"ok"}:
        assert time.monotonic() < deadline, "Redis back, but not seen as such"
        time.sleep(0.5)
    assert _request_everywhere(redis_cluster, who.key) == [201] * 3


# ---------------------------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartablePostgres]:
    server = RestartablePostgres(Path(tmp_path_factory.mktemp("chaos-pg")) / "pg")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def postgres_cluster(start_cluster: StartCluster, postgres: RestartablePostgres) -> Iterator[ApiCluster]:
    with start_cluster("chaos_pg", postgres_url=postgres.url) as running:
        yield running


def test_postgres_restarted_under_load_loses_no_accepted_loan_and_answers_clean_503s(
    postgres_cluster: ApiCluster, devnet_chains: dict[str, DeployedChain], postgres: RestartablePostgres
) -> None:
    cluster, chains = postgres_cluster, list(devnet_chains.values())
    with ThreadPoolExecutor(max_workers=6) as pool:
        borrowers = list(pool.map(lambda n: borrower(cluster, chains[n % 3], n), range(12)))
    quotes = []
    for n, who in enumerate(borrowers):
        with cluster.client(n % 3, who.key) as client:
            quotes.append(
                pool_quote(
                    client.post("/v1/credit-requests", json=REQUEST | {"preferred_chains": [who.chain.name]}),
                    who.chain.name,
                )
            )

    async def load() -> list[httpx.Response | BaseException]:
        async with httpx.AsyncClient(timeout=600) as client:
            calls = [
                accept(client, cluster.urls[n % 3], who, quote)
                for n, (who, quote) in enumerate(zip(borrowers, quotes, strict=True))
            ]
            calls += [credit_request(client, cluster.urls[n % 3], borrowers[n]) for n in range(12)]

            async def outage() -> None:
                await asyncio.sleep(0.5)
                await asyncio.to_thread(postgres.stop)
                # while it is down, every process is asked to write and to read: each must answer a clean 503
                asked = [credit_request(client, url, borrowers[n]) for n, url in enumerate(cluster.urls)]
                asked += [accept(client, url, borrowers[n], quotes[n]) for n, url in enumerate(cluster.urls)]
                asked += [
                    client.get(f"{url}/v1/quotes/{quotes[n]['id']}", headers={"X-API-Key": borrowers[n].key})
                    for n, url in enumerate(cluster.urls)
                ]
                during.extend(await asyncio.gather(*asked))
                await asyncio.sleep(2)
                await asyncio.to_thread(postgres.start)

            answers = await asyncio.gather(*calls, outage(), return_exceptions=True)
            return [a for a in answers if a is not None]

    during: list[httpx.Response] = []
    answers = asyncio.run(load())
    responses = [a for a in answers if isinstance(a, httpx.Response)]
    assert len(responses) == len(answers), [a for a in answers if not isinstance(a, httpx.Response)]
    assert {r.status_code for r in responses} <= {201, 409, 503}, {r.status_code: r.text for r in responses}
    assert len(during) == 3 * len(cluster.urls), "the requests during the outage were not all answered"
    assert {r.status_code for r in during} == {503}, [(r.request.url.path, r.status_code, r.text) for r in during]
    for unavailable in (r for r in responses + during if r.status_code == 503):
        assert unavailable.headers["content-type"] == "application/problem+json", unavailable.text
        assert int(unavailable.headers["Retry-After"]) > 0
        assert unavailable.json()["status"] == 503
        assert str(postgres.data_dir) not in unavailable.text

    # service resumes by itself; each quote's accept ends, and what the chain opened is what the database holds
    deadline = time.monotonic() + 120
    while _request_everywhere(cluster, borrowers[0].key) != [201] * 3:
        assert time.monotonic() < deadline, "the processes did not serve again after PostgreSQL came back"
        time.sleep(1)
    ended = {quote["id"]: settled(cluster, who, quote["id"]) for who, quote in zip(borrowers, quotes, strict=True)}
    records = loans_by_quote(cluster.platform.database_url)
    for who, quote in zip(borrowers, quotes, strict=True):
        opened = len(loans_opened(who))
        assert opened == records.get(quote["id"], 0), f"on-chain {opened} loans, {records.get(quote['id'])} records"
        assert opened == (1 if ended[quote["id"]] == "accepted" else 0)
    accepted = {r.json()["quote_id"] for r in responses if r.status_code == 201 and "quote_id" in r.json()}
    assert accepted <= {q for q, status in ended.items() if status == "accepted"}, "an accepted loan was lost"


# ---------------------------------------------------------------------------------------------- anvil


@pytest.fixture(scope="module")
def own_chains(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DeployedChain]]:
    """Devnets of the module's own: the test stops one."""
    with deployed_devnets(tmp_path_factory.mktemp("chaos-deployments")) as chains:
        yield chains


@pytest.fixture(scope="module")
def anvil_cluster(start_cluster: StartCluster, own_chains: dict[str, DeployedChain]) -> Iterator[ApiCluster]:
    with start_cluster("chaos_anvil", chains=own_chains) as running:
        yield running


def test_one_anvil_stopped_leaves_the_other_chains_quoted(
    anvil_cluster: ApiCluster, own_chains: dict[str, DeployedChain]
) -> None:
    who = borrower(anvil_cluster, own_chains["ethereum-local"], 0)
    with anvil_cluster.client(0, who.key) as client:
        before = client.post("/v1/credit-requests", json=REQUEST)
    assert before.status_code == 201
    assert {q["chain"] for q in before.json()["quotes"] if q["kind"] == "pool"} == set(own_chains)

    own_chains["polygon-local"].devnet.stop()
    for index in range(3):
        with anvil_cluster.client(index, who.key) as client:
            answer = client.post("/v1/credit-requests", json=REQUEST)
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert {q["chain"] for q in body["quotes"] if q["kind"] == "pool"} == {"ethereum-local", "arbitrum-local"}
        (left_out,) = [o for o in body["provider_outcomes"] if o["provider_id"].startswith("pool:polygon-local")]
        assert left_out["outcome"] != "offered"
        assert left_out["detail"], "the outcome says why"
