"""Three API processes on one PostgreSQL and one Redis, credit requests and accepts spread over them at once:
every accepted quote is one loan (on-chain and in the database), the same quote accepted through two processes at
once opens it once, and the relayer's nonces on every chain follow each other with no gap and no repeat; a loan
repaid through two processes at once is sent one transaction.

The default run holds a short load (30 credit requests, 9 quotes accepted through two processes each); the issue's
full load (300 credit requests, 100 accepts) is ``slow``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from api.wallet import signed_repayment
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
from tests.e2e.test_repayment_refusals import _refusal, _resigned, _wait_for_pending, new_pool_loan
from tests.e2e.test_repayments import CHAIN, _onchain_repayments
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


def test_two_processes_repaying_one_loan_at_once_send_one_transaction(
    cluster: ApiCluster, devnet_chains: dict[str, DeployedChain]
) -> None:
    """A ``"max"`` repayment of one loan posted to two processes at once: the relayer sends one transaction, the loan
    closes, and the other post is answered 409 ``loan-not-repayable`` without a transaction of its own. Until
    2026-11-29 a loan's repayments were one at a time only within a process: each process checked its repayment
    before the other's was mined, the relayer sent both, and the second reverted at its cost — both mined in one
    block, its borrower was told 422 ``repayment-rejected`` (sign a new one) of a loan already repaid. The loan's
    claim is now a lease in the database (``aggregator.loan_locks.LoanClaims``)."""
    chain = devnet_chains[CHAIN]
    wallet, loan_id, key = new_pool_loan(cluster.platform, chain)
    relayer = devnet_signer(Role.RELAYER).address
    with cluster.client(0, key) as client:
        loan = client.get(f"/v1/loans/{loan_id}").raise_for_status().json()
    first = signed_repayment(wallet, loan, "max", chain.devnet.rpc_url)
    bodies = {0: first, 1: _resigned(wallet, loan, first, nonce=int(first["nonce"]) + 1)}
    sent_before = chain.w3.eth.get_transaction_count(relayer)
    answers: dict[int, httpx.Response] = {}

    def post(process: int) -> None:
        with cluster.client(process, key) as client:
            answers[process] = client.post(f"/v1/loans/{loan_id}/repayments", json=bodies[process], timeout=300)

    posts = [threading.Thread(target=post, args=(process,)) for process in bodies]
    rpc_call: Any = chain.w3.provider.make_request
    rpc_call("evm_setAutomine", [False])
    try:  # the first sent waits in the node's pool, not mined: the other process's is posted while it is under way
        for thread in posts:
            thread.start()
        _wait_for_pending(chain, relayer, sent_before + 1, within=120.0)
        _wait_for_pending(chain, relayer, sent_before + 2, within=10.0)  # the old code's second is sent by now
        pending = chain.w3.eth.get_transaction_count(relayer, "pending")
    finally:
        rpc_call("evm_setAutomine", [True])
        rpc_call("evm_mine", [])
    for thread in posts:
        thread.join()

    told = {process: (answer.status_code, answer.text) for process, answer in answers.items()}
    assert pending == sent_before + 1, f"sent {pending - sent_before} transactions; the borrower was told {told}"
    closed, refused = sorted(answers.values(), key=lambda answer: answer.status_code)
    assert (closed.status_code, closed.json().get("closed")) == (201, True), told
    status, kind, _, _ = _refusal(refused)
    assert (status, kind) == (409, "loan-not-repayable"), told
    assert "repay:" not in refused.text, "the platform's intent key is not the borrower's business"
    assert chain.w3.eth.get_transaction_count(relayer) == sent_before + 1, "the second was never sent"
    assert len(_onchain_repayments(chain, int(loan["onchain_loan_id"]))) == 1
    with cluster.client(0, key) as client:
        assert client.get(f"/v1/loans/{loan_id}").raise_for_status().json()["status"] == "repaid"
