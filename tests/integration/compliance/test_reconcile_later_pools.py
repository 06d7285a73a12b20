"""A run over part of the chain (``--from-block``, ``--since-last``) reads a pool registered through governance
before its first block: the pool is in no deployment record, and its PoolRegistered log is outside the run's range,
yet its deposits in the range are read and its code is checked. A real devnet; the pool deployed and registered by
the Timelock as an admin would."""

from __future__ import annotations

import pytest

from chain.client import ChainClient
from compliance.reconcile_chain import read_chain
from tests.contracts.harness import USDC, Harness
from tests.support.devnet import DeployedChain
from tests.support.pools import deploy_pool, deposit

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_a_pool_registered_before_the_runs_range_is_read_in_it(ethereum_local: DeployedChain) -> None:
    h = Harness(ethereum_local)
    pool = deploy_pool(h)
    h.govern(h.aggregator, "registerPool", pool.address)
    h.advance(1)
    start = h.w3.eth.block_number + 1
    deposited = deposit(h, pool, 1_000 * USDC)
    client = await ChainClient(ethereum_local.config).connect()
    try:
        read = await read_chain(client, ethereum_local.record, from_block=start)
    finally:
        await client.close()
    assert read.scope.from_block == start
    in_pool = [entry for entry in read.logs if entry["address"].lower() == pool.address.lower()]
    assert deposited in {entry["transactionHash"].to_0x_hex() for entry in in_pool}, "its deposit in the range"
    names = {fact.address.lower(): fact.contract for fact in read.facts()}
    assert names[pool.address.lower()].startswith("LendingPool:"), names
    assert read.code == [], "its code is the LendingPool artifact's"
