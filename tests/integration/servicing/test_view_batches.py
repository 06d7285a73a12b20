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
from dataclasses import dataclass
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
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Role, devnet_signer
from chain.transactions import TransactionManager
from chain.views import VIEW_BATCH_LIMIT
from store.chain import SqlChainStore
from store.db import Database
from tests.contracts.harness import USDC, WETH, Harness
from tests.integration.servicing.conftest import record_in_ledger
from tests.support.devnet import DeployedChain
from tests.support.served import posts_served

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

    try:
        async with posts_served(handle) as url:
            yield url, passed, refused
    finally:
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


@dataclass(frozen=True)
class CappedNode:
    """A client through ``batch_capped_proxy`` and the sizes of the batches the proxy passed on and refused."""

    client: ChainClient
    database: Database
    passed: list[int]
    refused: list[int]

    def transactions(self, role: Role) -> TransactionManager:
        """``role``'s transaction manager over the capped client (``async with`` starts and closes it)."""
        store = SqlChainStore(self.database.sessions)
        return TransactionManager(self.client, devnet_signer(role), store, revert_artifacts=REVERT_ARTIFACTS)

    def assert_read_within_the_cap(self, calls: int) -> None:
        """At least ``calls`` reads went through, every batch within the cap and none refused."""
        assert self.refused == [], "no batch past the node's cap was sent"
        assert sum(self.passed) >= calls
        assert max(self.passed) <= VIEW_BATCH_LIMIT


@pytest.fixture
async def capped(own_chain: DeployedChain, servicing_db: Database) -> AsyncIterator[CappedNode]:
    async with batch_capped_proxy(own_chain.config.rpc_urls[0], VIEW_BATCH_LIMIT) as (url, passed, refused):
        client = await ChainClient(own_chain.config.model_copy(update={"rpc_urls": [url]})).connect()
        try:
            yield CappedNode(client, servicing_db, passed, refused)
        finally:
            await client.close()


async def test_the_default_job_reads_more_loans_than_a_batch_holds(
    own_chain: DeployedChain, loan_refs: list[int], capped: CappedNode
) -> None:
    settings = DefaulterSettings(ttl=timedelta(seconds=3), interval=0.2)
    async with capped.transactions(Role.OPERATOR) as operator:
        job = DefaultJob(
            capped.client, own_chain.record, capped.database, operator, holder="batches", settings=settings
        )
        report = await job.run_round()
    assert report.buckets == {ref: Bucket.CURRENT for ref in loan_refs}
    assert not report.defaulted
    assert not report.errors
    capped.assert_read_within_the_cap(LOANS + 1)


async def test_the_keeper_reads_more_loans_than_a_batch_holds(
    own_chain: DeployedChain, loan_refs: list[int], capped: CappedNode
) -> None:
    settings = KeeperSettings(ttl=timedelta(seconds=3), interval=0.2)
    async with capped.transactions(Role.KEEPER) as transactions:
        keeper = Keeper(
            capped.client, own_chain.record, capped.database, transactions, holder="batches", settings=settings
        )
        report = await keeper.run_round()
    assert set(report.health) == set(loan_refs)
    assert all(health > 10**18 for health in report.health.values()), "100 USDC against 0.1 WETH at 3,000: healthy"
    assert report.sent == []
    capped.assert_read_within_the_cap(2 * LOANS + 3)
