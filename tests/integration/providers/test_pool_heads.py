"""A pool quotes from its state at the head block the credit request read for its chain (``QuoteRequest.chain_heads``),
shared between requests at that block: a change mined after that head is seen by a request that read the newer head
(and by one that read none, at ``latest``), not by one pinned to the older head; a pinned read the node refuses is
made at ``latest``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from eth_utils.address import to_checksum_address

from chain.artifacts import load_artifact
from chain.client import ChainClient
from providers.models import Decline
from providers.pool import PoolAdapter
from tests.integration.providers.test_pools import _deploy_weth_pool
from tests.support.devnet import DeployedChain
from tests.unit.providers.fakes import REQUEST

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
async def client(ethereum_local: DeployedChain) -> AsyncIterator[ChainClient]:
    chain = ChainClient(ethereum_local.config)
    yield chain
    await chain.close()


async def test_a_quote_reads_the_pool_at_the_requests_head_and_shares_it(
    ethereum_local: DeployedChain, client: ChainClient
) -> None:
    pool = _deploy_weth_pool(ethereum_local, liquidity=5 * 10**18)
    adapter = PoolAdapter("ethereum-local", "WETH", to_checksum_address(pool), client.w3, lambda grade: 300)
    request = replace(REQUEST, asset="WETH", asset_decimals=18, principal=10**18, term_days=60)
    request = replace(request, chains=("ethereum-local",))
    before = ethereum_local.w3.eth.block_number
    at_before = replace(request, chain_heads=(("ethereum-local", before),))
    assert not isinstance(await adapter.quote(at_before), Decline)

    w3, owner = ethereum_local.w3, ethereum_local.w3.eth.accounts[0]
    vault = w3.eth.contract(address=pool, abi=load_artifact("LendingPool").abi)  # type: ignore[call-overload]
    w3.eth.wait_for_transaction_receipt(vault.functions.setMaxTerm(30 * 86_400).transact({"from": owner}))
    after = w3.eth.block_number

    assert not isinstance(await adapter.quote(at_before), Decline), "pinned to the older head: its state"
    newer = await adapter.quote(replace(request, chain_heads=(("ethereum-local", after),)))
    assert isinstance(newer, Decline)
    assert "maximum of 30 days" in newer.reason
    latest = await adapter.quote(request)  # no head read for the chain: at latest
    assert isinstance(latest, Decline)
    assert "maximum of 30 days" in latest.reason
    assert len(adapter._at_block) == 2, "one read per block, the repeated one shared"

    # a node that refuses the pinned read (here a block it has not seen) is asked at latest
    ahead = await adapter.quote(replace(request, chain_heads=(("ethereum-local", after + 1_000),)))
    assert isinstance(ahead, Decline)
    assert "maximum of 30 days" in ahead.reason
    assert len(adapter._at_block) == 2, "a refused read is not kept"
