"""The default job and the keeper over a node that caps a JSON-RPC batch's size, as geth does
(``--rpc.batch-request-limit``, 1,000 by default) and hosted nodes do: a loopback proxy in front of the package's own
devnet refuses any batch of more than ``VIEW_BATCH_LIMIT`` calls whole, with one error object. With as many open loans
as the limit, a round's reads (``gracePeriod`` and a ``getLoan`` per loan; the keeper's ``debtOf`` and
``collateralOf`` per loan and more) are past it: read as one batch, every round raised ChainError and nothing on the
chain was serviced. Read in batches within the limit, at the round's pinned block, both rounds see every loan."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web
from eth_account import Account
from eth_account.signers.local import LocalAccount

from aggregator.servicing.defaults import DefaulterSettings, DefaultJob
from aggregator.servicing.delinquency import Bucket
from aggregator.servicing.keeper import Keeper, KeeperSettings
from chain.client import ChainClient
from chain.devnet import LOOPBACK, free_port
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Role, devnet_signer
from chain.transactions import TransactionManager
from chain.views import VIEW_BATCH_LIMIT
from store.chain import SqlChainStore
from store.db import Database
from tests.contracts.harness import USDC, WETH, Harness
from tests.integration.servicing.conftest import record_in_ledger
from tests.support.devnet import DeployedChain

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

LOANS = VIEW_BATCH_LIMIT  # with gracePeriod, the default job's read is one call past the limit


@asynccontextmanager
async def batch_capped_proxy(upstream: str, cap: int) -> AsyncIterator[tuple[str, list[int], list[int]]]:
    """A JSON-RPC proxy that refuses a batch of more than ``cap`` calls with one error object (geth's answer); yields
    its URL and the sizes of the batches it passed on and refused."""
    passed: list[int] = []
    refused: list[int] = []
    session = aiohttp.ClientSession()

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        if isinstance(body, list) and len(body) > cap:
            refused.append(len(body))
            error = {"code": -32600, "message": f"batch too large: {len(body)} > {cap}"}
            return web.Response(text=json.dumps({"jsonrpc": "2.0", "id": None, "error": error}),
                                content_type="application/json")  # fmt: skip
        if isinstance(body, list):
            passed.append(len(body))
        async with session.post(upstream, json=body) as answered:
            return web.Response(text=await answered.text(), content_type="application/json")

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        yield f"http://{LOOPBACK}:{port}", passed, refused
    finally:
        await runner.cleanup()
        await session.close()


@pytest.fixture(scope="module")
def loan_refs(own_chain: DeployedChain, servicing_db: Database) -> list[int]:
    """``LOANS`` small loans funded off-chain (no pool liquidity spent), one borrower, all in the ledger."""
    harness = Harness(own_chain)
    harness.set_weth_price(3_000)
    borrower: LocalAccount = Account.create()
    harness.impersonate(borrower.address)
    harness.fund(borrower.address, weth=LOANS * WETH // 10)
    harness.approve_all(borrower.address)
    refs = []
    for _ in range(LOANS):
        ref, receipt = harness.open_loan(
            borrower, pool=False, principal=100 * USDC, originationFee=0, collateralAmount=WETH // 10
        )
        record_in_ledger(servicing_db, own_chain, receipt)
        refs.append(ref)
    return refs


@pytest.fixture
async def capped_client(own_chain: DeployedChain) -> AsyncIterator[tuple[ChainClient, list[int], list[int]]]:
    async with batch_capped_proxy(own_chain.config.rpc_urls[0], VIEW_BATCH_LIMIT) as (url, passed, refused):
        client = await ChainClient(own_chain.config.model_copy(update={"rpc_urls": [url]})).connect()
        try:
            yield client, passed, refused
        finally:
            await client.close()


async def test_the_default_job_reads_more_loans_than_a_batch_holds(
    own_chain: DeployedChain,
    servicing_db: Database,
    loan_refs: list[int],
    capped_client: tuple[ChainClient, list[int], list[int]],
) -> None:
    client, passed, refused = capped_client
    operator = await TransactionManager(
        client, devnet_signer(Role.OPERATOR), SqlChainStore(servicing_db.sessions), revert_artifacts=REVERT_ARTIFACTS
    ).start()
    try:
        settings = DefaulterSettings(ttl=timedelta(seconds=3), interval=0.2)
        job = DefaultJob(client, own_chain.record, servicing_db, operator, holder="batches", settings=settings)
        report = await job.run_round()
    finally:
        await operator.close()
    assert report.buckets == {ref: Bucket.CURRENT for ref in loan_refs}
    assert not report.defaulted
    assert not report.errors
    assert refused == [], "no batch past the node's cap was sent"
    assert sum(passed) >= LOANS + 1
    assert max(passed) <= VIEW_BATCH_LIMIT


async def test_the_keeper_reads_more_loans_than_a_batch_holds(
    own_chain: DeployedChain,
    servicing_db: Database,
    loan_refs: list[int],
    capped_client: tuple[ChainClient, list[int], list[int]],
) -> None:
    client, passed, refused = capped_client
    transactions = await TransactionManager(
        client, devnet_signer(Role.KEEPER), SqlChainStore(servicing_db.sessions), revert_artifacts=REVERT_ARTIFACTS
    ).start()
    try:
        settings = KeeperSettings(ttl=timedelta(seconds=3), interval=0.2)
        keeper = Keeper(client, own_chain.record, servicing_db, transactions, holder="batches", settings=settings)
        report = await keeper.run_round()
    finally:
        await transactions.close()
    assert set(report.health) == set(loan_refs)
    assert all(health > 10**18 for health in report.health.values()), "100 USDC against 0.1 WETH at 3,000: healthy"
    assert report.sent == []
    assert refused == [], "no batch past the node's cap was sent"
    assert sum(passed) >= 2 * LOANS + 3
    assert max(passed) <= VIEW_BATCH_LIMIT
