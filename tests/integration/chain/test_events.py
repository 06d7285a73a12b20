"""The event reader: confirmation depth, shallow and deep anvil_reorg, checkpoints across restarts, several chains."""

from __future__ import annotations

import asyncio

import pytest

from chain.client import ChainClient
from chain.devnet import Devnet
from chain.events import EventReader, WatchedContract, read_chains
from chain.transactions import Call, TransactionManager
from store.chain import SqlChainStore
from tests.integration.chain.support import (
    Collector,
    assert_waited_for,
    deploy_token,
    fresh_anvil,
    holder,
    manager,
    node_behind,
)

pytestmark = pytest.mark.integration


async def _setup(client: ChainClient, txs: TransactionManager, mints: int) -> tuple[WatchedContract, dict[int, str]]:
    """Deploy a token and mint 1..mints, one block each (automine); returns value → tx hash."""
    token = await deploy_token(txs)
    hashes = {}
    for value in range(1, mints + 1):
        hashes[value] = (
            await txs.submit_and_wait(f"mint:{value}", Call.function(token, "mint", holder(0), value))
        ).tx_hash
    return WatchedContract("token", token.address, "MockERC20"), hashes


async def test_reorg_shallower_than_confirmations_reports_nothing_reorged(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    async with manager(client, sqlite_store) as txs:
        contract, hashes = await _setup(client, txs, 6)  # blocks 2..7 hold mints 1..6
    reader = EventReader(client, sqlite_store, [contract], confirmations=3)
    seen = Collector()
    await reader.poll(seen)
    assert seen.mints == [1, 2, 3, 4]  # blocks up to head − 2 only
    await client.rpc("anvil_reorg", 2, [])  # replaces blocks 6 and 7 (mints 5 and 6) with empty ones
    for _ in range(3):
        await client.rpc("evm_mine")
    await reader.poll(seen)
    assert seen.mints == [1, 2, 3, 4]
    assert hashes[5] not in seen.tx_hashes
    assert hashes[6] not in seen.tx_hashes
    assert reader.reorgs == []


async def test_reorg_deeper_than_confirmations_rolls_back_and_reports(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    async with manager(client, sqlite_store) as txs:
        contract, _ = await _setup(client, txs, 6)
    reader = EventReader(client, sqlite_store, [contract], confirmations=2)
    seen = Collector()
    await reader.poll(seen)
    assert seen.mints == [1, 2, 3, 4, 5]  # head is block 7
    await client.rpc("anvil_reorg", 4, [])  # blocks 4..7 replaced: mints 3..6 gone
    await client.rpc("evm_mine")
    await reader.poll(seen)
    assert len(reader.reorgs) == 1
    report = reader.reorgs[0]
    assert report.checkpoint_block == 6
    assert report.ancestor_block <= 3
    assert [b.reorg for b in seen.batches if b.reorg] == [report]
    # after the report, what is re-read is the new chain: mints 1 and 2 only (re-delivered from the ancestor on)
    after = seen.batches[[b.reorg for b in seen.batches].index(report) + 1 :]
    redelivered = [int(e.args["value"]) for b in after for e in b.events]
    assert set(redelivered) <= {1, 2}
    assert 3 not in redelivered
    reorgs = await sqlite_store.run(lambda repo: repo.reorgs(client.config.chain_id))
    assert [(r.checkpoint_block, r.ancestor_block) for r in reorgs] == [(6, report.ancestor_block)]


async def test_checkpoint_survives_a_restart_and_ranges_adapt(client: ChainClient, sqlite_store: SqlChainStore) -> None:
    async with manager(client, sqlite_store) as txs:
        contract, _ = await _setup(client, txs, 5)
    first = Collector()
    await EventReader(client, sqlite_store, [contract], confirmations=1, initial_range=2).poll(first)
    assert first.mints == [1, 2, 3, 4, 5]
    assert len(first.batches) >= 3  # read in small ranges
    second = Collector()
    restarted = EventReader(client, sqlite_store, [contract], confirmations=1)
    assert await restarted.poll(second) == 0  # nothing delivered twice
    assert second.mints == []


async def test_three_chains_read_concurrently(sqlite_store: SqlChainStore) -> None:
    chains = [(31337, "ethereum-local"), (31338, "polygon-local"), (31339, "arbitrum-local")]
    with fresh_anvil(*chains[0]) as a, fresh_anvil(*chains[1]) as b, fresh_anvil(*chains[2]) as c:
        clients = [await ChainClient(d.config()).connect() for d in (a, b, c)]
        readers = []
        for index, chain_client in enumerate(clients):
            async with manager(chain_client, sqlite_store) as txs:
                token = await deploy_token(txs, f"token:{index}")
                await txs.submit_and_wait(f"mint:{index}", Call.function(token, "mint", holder(0), index + 1))
            readers.append(EventReader(chain_client, sqlite_store, [WatchedContract("t", token.address, "MockERC20")]))
        seen = Collector()
        stop = asyncio.Event()
        task = asyncio.create_task(read_chains(readers, seen, stop))
        for _ in range(100):
            if len(seen.mints) == 3:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task
        for chain_client in clients:
            await chain_client.close()
    assert sorted(seen.mints) == [1, 2, 3]
    assert {e.chain_id for batch in seen.batches for e in batch.events} == {31337, 31338, 31339}


async def test_a_node_behind_the_checkpoint_is_waited_for_not_taken_for_a_reorg(
    anvil: Devnet, client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    """The client failed over to an endpoint a few blocks behind the one the checkpoint was read from (same chain,
    same hashes up to its head): it has no block at the checkpoint, and the reader compared that null with the stored
    hash and rolled back, a reorg that retracted every event above the node's head."""
    async with manager(client, sqlite_store) as txs:
        token = await deploy_token(txs)
        async with node_behind(anvil) as lagging:
            for value in (1, 2, 3):  # blocks the lagging node does not have
                await txs.submit_and_wait(f"mint:{value}", Call.function(token, "mint", holder(0), value))
            contract = WatchedContract("token", token.address, "MockERC20")
            reader = EventReader(client, sqlite_store, [contract], confirmations=1)
            first = Collector()
            await reader.poll(first)
            assert first.mints == [1, 2, 3]
            await assert_waited_for(lagging, sqlite_store, contract)
    assert await reader.poll(Collector()) == 0, "the checkpoint stands where the primary left it"
