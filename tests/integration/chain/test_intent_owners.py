"""Relay intents owned per intent (issue 18): two transaction managers of one account on one PostgreSQL and one
anvil. While the first renews its leases the second never re-sends or fee-bumps its intents in flight (although its
own replacement time is short); once the first stops renewing, the second claims them in every open state it finds
(sent, and one a dead process persisted but never signed) and completes them: each mint once, no nonce gap."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.types import RPCEndpoint, RPCResponse

from chain.client import ChainClient
from chain.devnet import Devnet
from chain.errors import GasEstimationFailed, TransactionReverted
from chain.signers import Role, devnet_signer
from chain.transactions import Call, LifecycleSettings, TransactionManager
from chain.types import Wei
from store.chain import CONFIRMED, PENDING, SENT, IntentRecord, MinedUpdate, SqlChainStore
from tests.integration.chain.support import TOKEN_ARTIFACTS, deploy_token, holder, manager, miner

pytestmark = pytest.mark.integration

_DEAD = Web3.to_checksum_address("0x000000000000000000000000000000000000dEaD")
LEASE = 3.0  # seconds: the owners' claim_after (renewed every second; a stall of 2 s under load is tolerated)


class _Freezable:
    """A monotonic clock that can stop: a manager on it stops renewing its leases (as if its process hung)."""

    def __init__(self) -> None:
        self.frozen_at: float | None = None

    def __call__(self) -> float:
        return self.frozen_at if self.frozen_at is not None else time.monotonic()

    def freeze(self) -> None:
        self.frozen_at = time.monotonic()


def _manager(
    client: ChainClient, store: SqlChainStore, owner: str, clock: _Freezable | None = None, **settings: float
) -> TransactionManager:
    return TransactionManager(
        client,
        devnet_signer(Role.DEPLOYER),
        store,
        settings=LifecycleSettings(
            **{"confirmations": 1, "poll_interval": 0.05, "claim_after": LEASE, "stuck_after": 60.0, **settings}  # type: ignore[arg-type]
        ),
        revert_artifacts=TOKEN_ARTIFACTS,
        clock=clock or time.monotonic,
        owner=owner,
    )


def _orphan(client: ChainClient, token: Contract) -> IntentRecord:
    """An intent a dead process persisted (pending, no nonce) and never signed; its lease ran out long ago."""
    call = Call.function(token, "mint", holder(99), 99)
    sender = devnet_signer(Role.DEPLOYER).address
    return IntentRecord(
        key="orphan",
        chain_id=client.config.chain_id,
        sender=sender,
        to_address=call.to,
        data="0x" + call.data.hex(),
        value=0,
        gas=None,
        payload_hash=call.payload_hash(client.config.chain_id, sender),
        status=PENDING,
        owner="dead-process",
        lease_expires_at=datetime.now(UTC) - timedelta(minutes=5),
    )


async def _die(txs: TransactionManager) -> None:
    """The manager's process dies (as SIGKILL would): its watcher and lease renewals stop, nothing is released."""
    for task in (txs._watcher, txs._lease_keeper):
        assert task is not None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    txs._watcher = txs._lease_keeper = None


async def _until_mined(store: SqlChainStore, keys: list[str]) -> None:
    async with asyncio.timeout(10):
        while True:
            intents = [await store.get_intent(k) for k in keys]
            if all(i is not None and i.status == "mined" for i in intents):
                return
            await asyncio.sleep(0.05)


async def _until_owned_by(store: SqlChainStore, keys: list[str], owner: str, within: float) -> None:
    async with asyncio.timeout(within):
        while True:
            intents = [await store.get_intent(k) for k in keys]
            if all(i is not None and i.owner == owner for i in intents):
                return
            await asyncio.sleep(0.1)


async def test_a_live_owners_intents_are_left_alone_and_a_dead_owners_are_completed(
    client: ChainClient, pg_store: SqlChainStore
) -> None:
    async with manager(client, pg_store, Role.DEPLOYER) as deployer:
        token = await deploy_token(deployer)
    keys = [f"owned:{i}" for i in range(8)]
    clock = _Freezable()
    first = await _manager(client, pg_store, "first", clock).start()
    # the second would fee-bump anything it followed after half a second unmined, and re-broadcast it sooner
    second = _manager(client, pg_store, "second", stuck_after=0.5, rebroadcast_after=0.2)
    try:
        await client.rpc("evm_setAutomine", False)  # nothing is mined while ownership is tested
        await asyncio.gather(
            *(first.submit(k, Call.function(token, "mint", holder(i), i + 1)) for i, k in enumerate(keys))
        )
        await second.start()
        await asyncio.sleep(1.5 * LEASE)  # the first renews; the second must not touch its intents
        held = [await pg_store.get_intent(k) for k in keys]
        state = [(i.key, i.owner, i.status, len(i.attempts)) for i in held if i is not None]
        assert all(i is not None and i.owner == "first" and i.status == SENT for i in held), state
        assert all(len(i.attempts) == 1 for i in held if i is not None), f"a live owner's intent was bumped: {state}"
        assert second.in_flight == 0

        created, _ = await pg_store.create_intent(_orphan(client, token))
        assert created.owner == "dead-process"
        clock.freeze()  # the first stops renewing: its leases run out within LEASE seconds
        await _until_owned_by(pg_store, [*keys, "orphan"], "second", within=10 * LEASE)
        async with miner(client, 0.1):
            receipts = await asyncio.gather(*(second.wait(k, within=60) for k in [*keys, "orphan"]))
    finally:
        await second.close()
        await first.close()
        await client.rpc("evm_setAutomine", True)

    assert all(r.status == CONFIRMED for r in receipts)
    assert sorted(r.nonce for r in receipts) == list(range(1, 10))  # no gap, none twice
    assert int(await client.rpc("eth_getTransactionCount", devnet_signer(Role.DEPLOYER).address, "latest"), 16) == 10
    supply = int(await client.rpc("eth_call", {"to": token.address, "data": "0x18160ddd"}, "latest"), 16)
    assert supply == sum(range(1, 9)) + 99  # every mint once
    for key in [*keys, "orphan"]:
        stored = await pg_store.get_intent(key)
        assert stored is not None
        assert stored.owner == "second"


async def test_claims_renewals_and_releases_on_the_store(pg_store: SqlChainStore) -> None:
    """The store's ownership operations: one winner per claim, a live lease refused, renewal reports what is still
    held, a release lets the next claimer in at once."""
    lease = timedelta(seconds=30)
    record = IntentRecord(
        key="k",
        chain_id=1,
        sender="0x" + "11" * 20,
        to_address=None,
        data="0x",
        value=0,
        gas=21_000,
        payload_hash="0x" + "00" * 32,
        status=PENDING,
        owner="a",
        lease_expires_at=datetime.now(UTC) + lease,
    )
    await pg_store.create_intent(record)
    assert await pg_store.claim_stale("k", "b", lease) is None  # a's lease is live
    assert await pg_store.claim_expired(1, record.sender, "b", lease) == []
    assert await pg_store.renew_leases(1, record.sender, "a", lease) == {"k"}
    await pg_store.release_leases(1, record.sender, "a")
    claims = await asyncio.gather(*(pg_store.claim_expired(1, record.sender, f"c{i}", lease) for i in range(4)))
    assert sorted(len(c) for c in claims) == [0, 0, 0, 1]  # exactly one claimer wins
    winner = next(f"c{i}" for i, c in enumerate(claims) if c)
    assert await pg_store.renew_leases(1, record.sender, "a", lease) == set()  # a learns it lost the intent
    assert await pg_store.renew_leases(1, record.sender, winner, lease) == {"k"}


async def test_only_the_owner_writes_an_intent_s_end(pg_store: SqlChainStore) -> None:
    """A stalled former owner can neither fail an intent another manager claimed (its node refusal, its failed gas
    estimate) nor write its block or outcome from a round of its own; the owner can, once."""
    record = IntentRecord(
        key="ended",
        chain_id=1,
        sender="0x" + "11" * 20,
        to_address=None,
        data="0x",
        value=0,
        gas=21_000,
        payload_hash="0x" + "00" * 32,
        status=SENT,
        owner="second",
        lease_expires_at=datetime.now(UTC) + timedelta(seconds=30),
    )
    await pg_store.create_intent(record)
    mined = MinedUpdate("ended", "0x" + "ab" * 32, 7, "0x" + "cd" * 32, 21_000, None, True)
    assert not await pg_store.reject("ended", None, "refused", owner="first")
    assert await pg_store.record_round([], [mined], [], [("ended", CONFIRMED, None)], owner="first") == {"ended"}
    stored = await pg_store.get_intent("ended")
    assert stored is not None
    assert (stored.status, stored.block_number, stored.error) == (SENT, None, None)
    assert await pg_store.record_round([], [mined], [], [("ended", CONFIRMED, None)], owner="second") == set()
    assert not await pg_store.reject("ended", None, "refused", owner="second")  # ended: nothing to fail
    stored = await pg_store.get_intent("ended")
    assert stored is not None
    assert (stored.status, stored.block_number, stored.error) == (CONFIRMED, 7, None)


async def test_a_mined_intent_whose_owner_died_is_confirmed_by_the_claimant_without_a_resend(
    anvil: Devnet, client: ChainClient, pg_store: SqlChainStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two intents mined (one succeeded, one reverted) but not yet confirmed when their owner dies: the manager
    that claims them confirms the one and reports the other reverted from their receipts, sending nothing."""
    async with manager(client, pg_store, Role.DEPLOYER) as deployer:
        token = await deploy_token(deployer)  # nonce 0
    first = await _manager(client, pg_store, "first", claim_after=1.0, confirmations=3).start()
    watcher_client = await ChainClient(anvil.config(), timeout=5.0).connect()
    sent: list[str] = []
    make_request = watcher_client.provider.make_request

    async def recording(method: RPCEndpoint, params: Any) -> RPCResponse:
        if method == "eth_sendRawTransaction":
            sent.append(str(params[0]))
        return await make_request(method, params)

    make_batch_request = watcher_client.provider.make_batch_request

    async def recording_batch(requests: list[tuple[RPCEndpoint, Any]]) -> Any:
        sent.extend(str(params[0]) for method, params in requests if method == "eth_sendRawTransaction")
        return await make_batch_request(requests)

    monkeypatch.setattr(watcher_client.provider, "make_request", recording)
    monkeypatch.setattr(watcher_client.provider, "make_batch_request", recording_batch)  # broadcasts are batched
    second = _manager(watcher_client, pg_store, "second", claim_after=1.0, confirmations=3)
    calls = {
        "mined:minted": Call.function(token, "mint", holder(1), 5),
        # no balance to transfer: reverts on chain (explicit gas, so no estimate refuses it first)
        "mined:reverted": Call.function(token, "transfer", holder(2), 10**30, gas=90_000),
    }
    try:
        await client.rpc("evm_setAutomine", False)
        submitted = {key: await first.submit(key, call) for key, call in calls.items()}
        await client.rpc("evm_mine")  # both in one block, which needs two more before they are confirmed
        await _until_mined(pg_store, list(calls))
        await _die(first)
        await second.start()
        await _until_owned_by(pg_store, list(calls), "second", within=10)
        for _ in range(3):
            await client.rpc("evm_mine")
        minted = await second.wait("mined:minted", within=10)
        with pytest.raises(TransactionReverted, match="ERC20InsufficientBalance"):
            await second.wait("mined:reverted", within=10)
    finally:
        await second.close()
        await first.close()
        await watcher_client.close()
        await client.rpc("evm_setAutomine", True)

    assert sent == []  # the claimant re-sent nothing: both were already mined
    assert minted.status == CONFIRMED
    assert minted.tx_hash == submitted["mined:minted"].tx_hash
    for key, status in (("mined:minted", "confirmed"), ("mined:reverted", "reverted")):
        stored = await pg_store.get_intent(key)
        assert stored is not None
        assert (stored.status, stored.owner, len(stored.attempts)) == (status, "second", 1)
    assert int(await client.rpc("eth_getTransactionCount", devnet_signer(Role.DEPLOYER).address, "latest"), 16) == 3


async def test_a_stalled_former_owner_cannot_fail_an_intent_another_manager_completed(
    client: ChainClient, sqlite_store: SqlChainStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first owner stalls in the gas estimate past its lease; the second claims the intent and gets it
    confirmed; the first's estimate then fails and it wrote the intent failed over the second's confirmation."""
    reached, go = asyncio.Event(), asyncio.Event()

    async def stalled_then_failing(to: str | None, data: bytes, value: int) -> int:
        reached.set()
        await go.wait()
        raise GasEstimationFailed("gas estimate failed: the state moved on")

    first = manager(client, sqlite_store)
    first.owner = "first"
    second = manager(client, sqlite_store)
    second.owner = "second"
    monkeypatch.setattr(first, "_estimate_gas", stalled_then_failing)
    async with first, second:
        submitted = asyncio.create_task(first.submit("contested", Call(to=_DEAD, value=Wei(1))))  # gas to estimate
        await asyncio.wait_for(reached.wait(), 10)
        await sqlite_store.release_leases(first.account.chain_id, first.account.address, "first")  # its lease ran out
        receipt = await second.wait("contested", within=10)
        go.set()
        with pytest.raises(GasEstimationFailed):
            await submitted
    stored = await sqlite_store.get_intent("contested")
    assert stored is not None
    assert (stored.owner, stored.status, stored.error) == ("second", CONFIRMED, None)
    assert stored.tx_hash == receipt.tx_hash
