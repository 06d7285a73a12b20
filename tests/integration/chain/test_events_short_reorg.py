"""The event reader on a node whose head is below the checkpoint: a reorg onto a shorter branch is rolled back, a node
behind on the same branch is waited for."""

from __future__ import annotations

import pytest
from web3.contract import Contract

from chain.client import ChainClient
from chain.devnet import Devnet
from chain.events import EventReader, WatchedContract
from chain.transactions import Call, TransactionManager
from store.chain import SqlChainStore
from tests.integration.chain.support import Collector, assert_waited_for, deploy_token, holder, manager, node_behind

pytestmark = pytest.mark.integration


async def _mint(txs: TransactionManager, token: Contract, *values: int) -> None:
    """One block per mint (automine)."""
    for value in values:
        await txs.submit_and_wait(f"mint:{value}", Call.function(token, "mint", holder(0), value))


async def test_a_reorg_onto_a_shorter_branch_is_rolled_back_not_waited_out(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    """Blocks 5..7 were delivered (checkpoint 7); the chain went back to block 4 and grew a branch of two blocks
    whose first mints 40. The node has no block 7, and the reader took that for a node behind the checkpoint: it
    waited until the new branch passed block 7, the dropped mints 4..6 standing delivered and mint 40 undelivered
    (on an idle chain for ever)."""
    async with manager(client, sqlite_store) as txs:
        token = await deploy_token(txs)  # block 1
        await _mint(txs, token, 1, 2, 3)  # blocks 2..4
        snapshot = await client.rpc("evm_snapshot")
        await _mint(txs, token, 4, 5, 6)  # blocks 5..7
    reader = EventReader(client, sqlite_store, [WatchedContract("token", token.address, "MockERC20")], confirmations=1)
    seen = Collector()
    await reader.poll(seen)
    assert seen.mints == [1, 2, 3, 4, 5, 6]
    assert await client.rpc("evm_revert", snapshot)
    # the new branch, sent past the transaction manager (whose nonces are those of the dropped branch)
    sender = (await client.rpc("eth_accounts"))[5]
    data = token.encode_abi("mint", [holder(1), 40])
    await client.rpc("eth_sendTransaction", {"from": sender, "to": token.address, "data": data})  # block 5
    await client.rpc("anvil_mine", "0x1")  # block 6
    assert int(await client.rpc("eth_blockNumber"), 16) == 6

    assert await reader.poll(seen) == 1
    assert [(r.checkpoint_block, r.ancestor_block) for r in reader.reorgs] == [(7, 4)]
    reorg_batch = next(b for b in seen.batches if b.reorg is not None)
    assert (reorg_batch.from_block, reorg_batch.to_block) == (7, 7)  # above the new branch's confirmed head
    after = seen.batches[seen.batches.index(reorg_batch) + 1 :]
    assert [(e.block_number, int(e.args["value"])) for b in after for e in b.events] == [(5, 40)]
    head_hash = (await client.rpc("eth_getBlockByNumber", "0x6", False))["hash"]
    checkpoint = await sqlite_store.run(lambda repo: repo.checkpoint(client.config.chain_id, "default"))
    assert checkpoint == (6, head_hash)
    reorgs = await sqlite_store.run(lambda repo: repo.reorgs(client.config.chain_id))
    assert [(r.checkpoint_block, r.ancestor_block) for r in reorgs] == [(7, 4)]


async def test_a_node_behind_on_the_delivered_branch_is_waited_for(
    anvil: Devnet, client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    """An endpoint behind the one the checkpoint was read from (a fork of it at block 3: the same blocks up to
    there) has no block at the checkpoint, and its block 3 has the hash the reader stored: it lags, and nothing is
    rolled back (a reader that took every node below the checkpoint for a shorter branch would retract mints 3
    and 4)."""
    async with manager(client, sqlite_store) as txs:
        token = await deploy_token(txs)  # block 1
        await _mint(txs, token, 1, 2)  # blocks 2 and 3
        contract = WatchedContract("token", token.address, "MockERC20")
        reader = EventReader(client, sqlite_store, [contract], confirmations=1)
        first = Collector()
        await reader.poll(first)  # checkpoint 3, its hash stored
        async with node_behind(anvil) as lagging:
            await _mint(txs, token, 3, 4)  # blocks 4 and 5: the lagging node has not got them
            await reader.poll(first)
            assert first.mints == [1, 2, 3, 4]
            checkpoint = await sqlite_store.run(lambda repo: repo.checkpoint(client.config.chain_id, "default"))
            assert checkpoint is not None
            assert checkpoint[0] == 5
            stored = await sqlite_store.run(lambda repo: repo.block_hashes(client.config.chain_id, "default"))
            assert int(await lagging.rpc("eth_blockNumber"), 16) == 3
            assert (3, (await lagging.rpc("eth_getBlockByNumber", "0x3", False))["hash"]) in stored
            await assert_waited_for(lagging, sqlite_store, contract)
    assert await sqlite_store.run(lambda repo: repo.checkpoint(client.config.chain_id, "default")) == checkpoint
    assert await reader.poll(Collector()) == 0, "the checkpoint stands where the primary left it"
