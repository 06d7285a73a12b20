"""Nonce gaps on a real anvil: a nonce the node refused, or a resumed intent that can no longer be estimated, leaves
the later transactions of the account queued on the node behind it. The manager fills such a nonce at once (a
zero-value transfer to itself), and never fee-bumps a transaction that waits behind a missing nonce: a higher fee
cannot get it mined, only the missing nonce can. And a refused rebroadcast of a transaction the node holds keeps its
nonce."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from web3 import Web3
from web3.types import RPCEndpoint

from chain.client import ChainClient
from chain.errors import GasEstimationFailed, TransactionRejected
from chain.signers import Role, devnet_signer
from chain.transactions import Call, LifecycleSettings, TransactionManager
from store.chain import PENDING, IntentRecord, SqlChainStore
from tests.integration.chain.support import deploy_token, holder, manager

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


async def test_a_nonce_the_node_refused_is_filled_at_once_and_the_later_transactions_are_mined_unbumped(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    """Nonce 0 is signed and held back while nonces 1 and 2 reach the node (queued behind 0); the node then refuses
    nonce 0 (insufficient funds). Its nonce was released and nothing sent under it until a later submit took it, so
    1 and 2 waited, and were fee-bumped towards the cap for nothing."""
    signed, go = asyncio.Event(), asyncio.Event()

    async def hold_the_unfunded(key: str) -> None:
        if key == "unfunded":
            signed.set()
            await go.wait()

    settings = LifecycleSettings(confirmations=1, poll_interval=0.05, stuck_after=1.0)
    txs = TransactionManager(client, devnet_signer(Role.DEPLOYER), sqlite_store, settings=settings)
    txs._on_signed = hold_the_unfunded
    async with txs:
        unfunded = asyncio.create_task(txs.submit("unfunded", Call.transfer(DEAD, 10**30)))
        await asyncio.wait_for(signed.wait(), 10)
        later = [await txs.submit(f"later:{i}", Call.transfer(DEAD, i)) for i in (1, 2)]
        assert [s.nonce for s in later] == [1, 2]
        assert await _count(client, "pending") == 0  # queued behind nonce 0
        go.set()
        with pytest.raises(TransactionRejected):
            await unfunded
        receipts = [await txs.wait(s.intent_key, within=3) for s in later]
    assert [r.tx_hash for r in receipts] == [s.tx_hash for s in later]  # the first attempts: nothing bumped
    for submission in later:
        stored = await sqlite_store.get_intent(submission.intent_key)
        assert stored is not None
        assert len(stored.attempts) == 1
    assert await _count(client) == 3  # nonce 0 used by the filler


async def test_a_refusal_the_watcher_heard_first_reaches_the_submit(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    """The order a loaded machine gave the test above: the watcher broadcasts the signed, held nonce 0 before its
    own submit does, hears the refusal and fills the nonce; the submit's send then finds nonce 0 used. Its caller
    must hear the refusal all the same (it was told \"taken over by another manager\" and got no error)."""
    signed, go = asyncio.Event(), asyncio.Event()

    async def hold_the_unfunded(key: str) -> None:
        if key == "unfunded":
            signed.set()
            await go.wait()

    settings = LifecycleSettings(confirmations=1, poll_interval=0.05, stuck_after=1.0)
    txs = TransactionManager(client, devnet_signer(Role.DEPLOYER), sqlite_store, settings=settings)
    txs._on_signed = hold_the_unfunded
    async with txs:
        unfunded = asyncio.create_task(txs.submit("unfunded", Call.transfer(DEAD, 10**30)))
        await asyncio.wait_for(signed.wait(), 10)
        later = [await txs.submit(f"later:{i}", Call.transfer(DEAD, i)) for i in (1, 2)]
        for _ in range(200):  # the watcher broadcasts the held attempt, is refused, fills nonce 0: all three mined
            if await _count(client) == 3:
                break
            await asyncio.sleep(0.05)
        assert isinstance(txs._settled.get("unfunded"), TransactionRejected)
        assert await _count(client) == 3, "nonce 0 filled before the submit sends"
        go.set()
        with pytest.raises(TransactionRejected):
            await unfunded
        assert [(await txs.wait(s.intent_key, within=3)).tx_hash for s in later] == [s.tx_hash for s in later]


async def test_a_refused_nonce_is_filled_for_the_later_transactions_of_another_manager(
    client: ChainClient, pg_store: SqlChainStore
) -> None:
    """Two managers of one account on PostgreSQL (two processes): the first's nonce 0 is refused after the second's
    1 and 2 reached the node. The first follows nothing later, so it left nonce 0 to the next submit of either."""
    signed, go = asyncio.Event(), asyncio.Event()

    async def hold_the_unfunded(key: str) -> None:
        if key == "unfunded":
            signed.set()
            await go.wait()

    settings = LifecycleSettings(confirmations=1, poll_interval=0.05, stuck_after=1.0)
    first = TransactionManager(
        client, devnet_signer(Role.DEPLOYER), pg_store, settings=settings, on_signed=hold_the_unfunded, owner="first"
    )
    second = TransactionManager(client, devnet_signer(Role.DEPLOYER), pg_store, settings=settings, owner="second")
    async with first, second:
        unfunded = asyncio.create_task(first.submit("unfunded", Call.transfer(DEAD, 10**30)))
        await asyncio.wait_for(signed.wait(), 10)
        later = [await second.submit(f"later:{i}", Call.transfer(DEAD, i)) for i in (1, 2)]
        assert [s.nonce for s in later] == [1, 2]
        go.set()
        with pytest.raises(TransactionRejected):
            await unfunded
        receipts = [await second.wait(s.intent_key, within=3) for s in later]
    assert [r.tx_hash for r in receipts] == [s.tx_hash for s in later]
    assert await _count(client) == 3


@pytest.mark.parametrize("store_name", ["sqlite_store", "pg_store"])
async def test_a_nonce_its_process_released_and_died_before_filling_is_filled_at_the_restart(
    client: ChainClient, store_name: str, request: pytest.FixtureRequest
) -> None:
    """Nonce 0 is refused after nonce 1 reached the node (queued behind it), and the process stops between the
    release and the filler. On SQLite the restart floored the counter above the highest nonce an intent holds and
    dropped every released nonce below that floor, nonce 0 with them: never sent again, and nonce 1 and every later
    transaction waited on the node for ever. Kept (on PostgreSQL too), it waited for the next submit."""
    store: SqlChainStore = request.getfixturevalue(store_name)
    signed, go = asyncio.Event(), asyncio.Event()

    async def hold_the_unfunded(key: str) -> None:
        if key == "unfunded":
            signed.set()
            await go.wait()

    async def stopped_before_filling(nonce: int, failed: str) -> None:
        return None

    settings = LifecycleSettings(confirmations=1, poll_interval=0.05)
    first = TransactionManager(
        client, devnet_signer(Role.DEPLOYER), store, settings=settings, on_signed=hold_the_unfunded, owner="first"
    )
    first._fill_gap = stopped_before_filling  # type: ignore[method-assign]
    async with first:
        unfunded = asyncio.create_task(first.submit("unfunded", Call.transfer(DEAD, 10**30)))
        await asyncio.wait_for(signed.wait(), 10)
        later = await first.submit("later", Call.transfer(DEAD, 1))
        assert later.nonce == 1
        go.set()
        with pytest.raises(TransactionRejected):
            await unfunded
        assert await _count(client, "pending") == 0  # nonce 1 queued behind the released nonce 0
    async with manager(client, store) as restarted:  # on the same database; nothing new is submitted
        assert (await restarted.wait("later", within=10)).tx_hash == later.tx_hash
    assert await _count(client) == 2  # nonce 0 filled


async def test_a_transaction_queued_behind_a_missing_nonce_is_not_fee_bumped(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    """A nonce taken and not yet sent (another process's, stalled) holds the next transaction in the node's queue:
    replacing it with higher fees every ``stuck_after`` cannot get it mined and only raises what it will cost."""
    async with manager(client, sqlite_store, stuck_after=0.2) as txs:
        missing = await txs.nonces.allocate(txs.account, "elsewhere")  # nonce 0, sent by nobody yet
        queued = await txs.submit("queued", Call.transfer(DEAD, 1))
        assert queued.nonce == missing + 1
        await asyncio.sleep(1.5)  # several stuck_after periods
        stored = await sqlite_store.get_intent("queued")
        assert stored is not None
        assert len(stored.attempts) == 1, "a transaction queued behind a gap was fee-bumped"
        filler = txs.signer.sign_transaction(
            {"type": 2, "chainId": 31337, "nonce": missing, "gas": 21_000, "value": 0, "to": SENDER}
            | {"maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
        )
        await client.rpc("eth_sendRawTransaction", "0x" + filler.hex())
        assert (await txs.wait("queued", within=5)).tx_hash == queued.tx_hash


async def test_a_resumed_intent_whose_gas_estimate_fails_gives_back_its_bound_nonce(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    """A dead process bound nonce 1 to an intent and never signed it; when it is claimed, the call no longer passes
    its gas estimate. The intent failed with the nonce still bound: a gap every later transaction waited behind."""
    async with manager(client, sqlite_store) as txs:
        token = await deploy_token(txs)  # nonce 0
        call = Call.function(token, "transfer", holder(2), 10**18)  # the deployer holds no tokens: it cannot pass
        orphan = IntentRecord(
            key="orphan",
            chain_id=txs.account.chain_id,
            sender=SENDER,
            to_address=call.to,
            data="0x" + call.data.hex(),
            value=0,
            gas=None,
            payload_hash=call.payload_hash(txs.account.chain_id, SENDER),
            status=PENDING,
            owner="dead-process",
            lease_expires_at=datetime.now(UTC) - timedelta(minutes=5),
        )
        await sqlite_store.create_intent(orphan)
        assert await txs.nonces.allocate(txs.account, "orphan") == 1  # bound, as the dead process left it
        later = await txs.submit("later", Call.transfer(DEAD, 1))
        assert later.nonce == 2
        with pytest.raises(GasEstimationFailed):
            await txs.wait("orphan", within=10)  # claimed and resumed here
        assert (await txs.wait("later", within=5)).tx_hash == later.tx_hash
    stored = await sqlite_store.get_intent("orphan")
    assert stored is not None
    assert stored.status == "failed"
    assert await _count(client) == 3
