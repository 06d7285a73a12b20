"""Nonces on a real anvil that must not be given back: a refused rebroadcast of a transaction the node holds keeps
its nonce."""

from __future__ import annotations

import asyncio

import pytest
from web3 import Web3
from web3.types import RPCEndpoint

from chain.client import ChainClient
from chain.signers import Role, devnet_signer
from chain.transactions import Call, LifecycleSettings, TransactionManager
from store.chain import SqlChainStore
from tests.integration.chain.support import manager

pytestmark = pytest.mark.integration

DEAD = Web3.to_checksum_address("0x000000000000000000000000000000000000dEaD")
SENDER = devnet_signer(Role.DEPLOYER).address


async def _count(client: ChainClient, block: str = "latest") -> int:
    return int(await client.rpc("eth_getTransactionCount", SENDER, block), 16)


async def test_a_resumed_transaction_the_node_holds_is_not_failed_by_a_refused_rebroadcast(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    """A process dies after the node accepted its transaction and before the store recorded it sent; the account's
    balance then falls below what the transaction needs, and the claimant's rebroadcast meets "insufficient funds".
    The attempt was not known to be accepted, so that refusal failed the intent and released its nonce while the node
    still held the transaction: mined once the balance came back, under a failed intent, its nonce handed out again."""
    broadcast = asyncio.Event()

    async def broadcast_and_die(key: str) -> None:
        intent = await sqlite_store.get_intent(key)
        assert intent is not None
        await client.provider.make_request(RPCEndpoint("eth_sendRawTransaction"), [intent.attempts[0].raw])
        broadcast.set()
        await asyncio.Event().wait()  # the process is gone before it records anything more

    dead = TransactionManager(
        client,
        devnet_signer(Role.DEPLOYER),
        sqlite_store,
        settings=LifecycleSettings(confirmations=1, poll_interval=0.05),
        on_signed=broadcast_and_die,
        owner="dead",
    )
    await dead.start()
    for task in (dead._watcher, dead._lease_keeper):  # nothing of it runs on
        assert task is not None
        task.cancel()
    balance = await client.rpc("eth_getBalance", SENDER, "latest")
    await client.rpc("evm_setAutomine", False)
    try:
        submitted = asyncio.create_task(dead.submit("accepted", Call.transfer(DEAD, 10**18)))
        await asyncio.wait_for(broadcast.wait(), 10)
        stored = await sqlite_store.get_intent("accepted")
        assert stored is not None
        assert stored.status == "signed"  # the node has it; the store never heard
        await sqlite_store.release_leases(stored.chain_id, SENDER, "dead")
        await client.rpc("anvil_setBalance", SENDER, hex(10**17))  # short of the 1 ETH it sends
        async with manager(client, sqlite_store, rebroadcast_after=0.1, stuck_after=60.0) as claimant:
            await asyncio.sleep(0.8)  # claimed at start, its rebroadcasts refused
            again = await sqlite_store.get_intent("accepted")
            assert again is not None
            assert again.owner == claimant.owner
            assert again.status != "failed", again.error
            await client.rpc("anvil_setBalance", SENDER, balance)
            await client.rpc("evm_setAutomine", True)
            await client.rpc("evm_mine")
            assert (await claimant.wait("accepted", within=5)).tx_hash == stored.attempts[0].tx_hash
            after = await claimant.submit_and_wait("after", Call.transfer(DEAD, 2), within=5)
            assert after.nonce == 1  # nonce 0 was not handed out again
        submitted.cancel()
        await asyncio.gather(submitted, return_exceptions=True)
    finally:
        await client.rpc("evm_setAutomine", True)
        await dead.close()
