"""Three API processes on one PostgreSQL and one Redis, credit requests and accepts spread over them at once:
every accepted quote is one loan (on-chain and in the database), the same quote accepted through two processes at
once opens it once, and the relayer's nonces on every chain follow each other with no gap and no repeat.

The default run holds a short load (30 credit requests, 9 quotes accepted through two processes each); the issue's
full load (300 credit requests, 100 accepts) is ``slow``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from chain.signers import Role, devnet_signer
from tests.chaos.support import (
    REQUEST,
    accept,
    assert_no_nonce_gap_or_repeat,
    borrower,
    credit_request,
    loans_by_quote,
    loans_opened,
    pool_quote,
    settled,
)
from tests.support.cluster import ApiCluster, StartCluster
from tests.support.devnet import DeployedChain

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

IN_FLIGHT = 30  # requests on the wire at once, over the three processes


@pytest.fixture(scope="module")
def cluster(start_cluster: StartCluster) -> Iterator[ApiCluster]:
    with start_cluster("chaos_cluster") as running:  # leases of about 2 s, the accept's renewed while it works
        yield running


async def _load(
    cluster: ApiCluster, borrowers: list[Any], requests: int
) -> tuple[list[dict[str, Any]], list[httpx.Response], list[httpx.Response]]:
    """One credit request per borrower (a pool quote each), then at once: the other credit requests and two accepts
    of every quote, through two different processes. The quotes, the credit requests' and the accepts' answers."""
    urls, gate = cluster.urls, asyncio.Semaphore(IN_FLIGHT)
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:

        async def limited(call: Any) -> httpx.Response:
            async with gate:
                answer: httpx.Response = await call
                return answer

        first = await asyncio.gather(
            *(limited(credit_request(client, urls[n % len(urls)], who)) for n, who in enumerate(borrowers))
        )
        quotes = [pool_quote(answer, who.chain.name) for answer, who in zip(first, borrowers, strict=True)]
        more = [
            limited(credit_request(client, urls[n % len(urls)], borrowers[n % len(borrowers)]))
            for n in range(requests - len(borrowers))
        ]
        accepts = [
            limited(accept(client, urls[(n + k) % len(urls)], who, quote))
            for n, (who, quote) in enumerate(zip(borrowers, quotes, strict=True))
            for k in (1, 2)
        ]
        answers = await asyncio.gather(*more, *accepts)
    return quotes, list(answers[: len(more)]), list(answers[len(more) :])


@pytest.mark.parametrize(
    ("requests", "accepts"),
    [
        pytest.param(30, 9, id="30-requests-9-accepts"),
        pytest.param(300, 100, id="300-requests-100-accepts", marks=pytest.mark.slow),
    ],
)
def test_requests_and_accepts_spread_over_three_processes_give_one_loan_per_accepted_quote(
    cluster: ApiCluster, devnet_chains: dict[str, DeployedChain], requests: int, accepts: int
) -> None:
    chains = list(devnet_chains.values())
    relayer = devnet_signer(Role.RELAYER).address
    start = {c.name: (c.w3.eth.block_number + 1, c.w3.eth.get_transaction_count(relayer)) for c in chains}
    before = loans_by_quote(cluster.platform.database_url)
    with ThreadPoolExecutor(max_workers=6) as pool:
        borrowers = list(pool.map(lambda n: borrower(cluster, chains[n % len(chains)], n), range(accepts)))

    for index in range(len(cluster.urls)):  # the first request of a process builds its caches (the name index)
        with cluster.client(index, borrowers[0].key) as client:
            assert client.post("/v1/credit-requests", json=REQUEST).status_code == 201

    quotes, requested, accepted = asyncio.run(_load(cluster, borrowers, requests))

    assert {answer.status_code for answer in requested} == {201}, {a.status_code: a.text for a in requested}
    assert {answer.status_code for answer in accepted} <= {201, 409}, {a.status_code: a.text for a in accepted}
    refused = {answer.json()["type"].rsplit("/", 1)[1] for answer in accepted if answer.status_code == 409}
    assert refused <= {"accept-in-progress"}
    for who, quote in zip(borrowers, quotes, strict=True):
        assert settled(cluster, who, quote["id"]) == "accepted"
    loan_ids = {answer.json()["id"] for answer in accepted if answer.status_code == 201}
    assert len(loan_ids) <= accepts, "a quote accepted through two processes gives the same loan"
    records = loans_by_quote(cluster.platform.database_url)
    new = {quote_id: count for quote_id, count in records.items() if quote_id not in before}
    assert new == {quote["id"]: 1 for quote in quotes}, "one loan per accepted quote, none without one"
    assert [len(loans_opened(who)) for who in borrowers] == [1] * accepts
    for chain in chains:
        first_block, first_nonce = start[chain.name]
        assert_no_nonce_gap_or_repeat(chain, first_block, first_nonce)
