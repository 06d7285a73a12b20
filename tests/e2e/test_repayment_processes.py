"""Two API processes (``creditmesh serve --processes 2``) on one PostgreSQL and one anvil, a borrower posting a
``"max"`` repayment of one loan to each at once: the relayer sends one transaction, the loan closes, and the other
post is answered 409 ``loan-not-repayable`` without a transaction of its own.

Until 2026-11-29 a loan's repayments were one at a time only within a process (an ``asyncio.Lock``): each process
checked its repayment before the other's was mined, both passed, and the relayer sent both — the second reverted at
the relayer's cost, and, both mined in one block, its borrower was told 422 ``repayment-rejected``, "the chain refused
the repayment: its transaction reverted in block 54" (sign a new one) of a loan already repaid. The loan's claim is
now a lease in the database (``aggregator.loan_locks.LoanClaims``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from api.local_platform import _process_name_of, _serve_children
from api.wallet import signed_repayment
from tests.e2e.test_repayment_refusals import _refusal, _relayer, _resigned, _wait_for_pending
from tests.e2e.test_repayments import CHAIN, _mint, _onchain_repayments, _open_pool_loan
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform, running_platform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # a platform of two processes on a loaded machine

HEADER = "x-creditmesh-process"


@pytest.fixture(scope="module")
def two_processes(
    devnet_chains: dict[str, DeployedChain],
    tmp_path_factory: pytest.TempPathFactory,
    postgres_schema: Callable[[str], str],
    redis_url: str,
) -> Iterator[RunningPlatform]:
    with running_platform(
        devnet_chains,
        tmp_path_factory.mktemp("repayment-processes"),
        database_url=postgres_schema("repayment_processes"),
        settings={"CREDITMESH_REDIS_URL": redis_url},  # serve --processes shares its limits there
        processes=2,
    ) as platform:
        yield platform


def _process_urls(platform: RunningPlatform) -> dict[str, str]:
    """Each API process's own URL by its name (``api-1``, ``api-2``), once both answer: the balancer bypassed, so
    that each post goes to the process the test means."""
    assert platform.api is not None
    deadline = time.monotonic() + 120
    while True:
        children = _serve_children(platform.api.pid).items()
        urls = {name: f"http://127.0.0.1:{port}" for pid, port in children if (name := _process_name_of(pid))}
        if len(urls) == 2 and all(_healthy(url) for url in urls.values()):
            return urls
        assert time.monotonic() < deadline, f"the two API processes did not both answer: {urls}"
        time.sleep(0.5)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_processes_repaying_one_loan_at_once_send_one_transaction(
    two_processes: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    platform, chain = two_processes, devnet_chains[CHAIN]
    rpc = chain.devnet.rpc_url
    urls = _process_urls(platform)
    wallet: LocalAccount = Account.create()
    _mint(chain, "WETH", wallet.address, 2 * 10**18)
    _mint(chain, "USDC", wallet.address, 50 * 10**6)
    loan_id, key = _open_pool_loan(platform, chain, wallet)
    relayer = _relayer(platform, key)
    with platform.client(key) as client:
        loan = client.get(f"/v1/loans/{loan_id}").raise_for_status().json()
    first = signed_repayment(wallet, loan, "max", rpc)
    bodies = {"api-1": first, "api-2": _resigned(wallet, loan, first, nonce=int(first["nonce"]) + 1)}
    sent_before = chain.w3.eth.get_transaction_count(relayer)
    answers: dict[str, httpx.Response] = {}

    def post(process: str) -> None:
        with httpx.Client(base_url=urls[process], headers={"X-API-Key": key}, timeout=300) as client:
            answers[process] = client.post(f"/v1/loans/{loan_id}/repayments", json=bodies[process])

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
    assert {answer.headers[HEADER] for answer in answers.values()} == {"api-1", "api-2"}, "one post to each process"
    assert pending == sent_before + 1, f"sent {pending - sent_before} transactions; the borrower was told {told}"
    closed, refused = sorted(answers.values(), key=lambda answer: answer.status_code)
    assert (closed.status_code, closed.json().get("closed")) == (201, True), told
    status, kind, _, _ = _refusal(refused)
    assert (status, kind) == (409, "loan-not-repayable"), told
    assert "repay:" not in refused.text, "the platform's intent key is not the borrower's business"
    assert chain.w3.eth.get_transaction_count(relayer) == sent_before + 1, "the second was never sent"
    assert len(_onchain_repayments(chain, int(loan["onchain_loan_id"]))) == 1
    with platform.client(key) as client:
        assert client.get(f"/v1/loans/{loan_id}").raise_for_status().json()["status"] == "repaid"
