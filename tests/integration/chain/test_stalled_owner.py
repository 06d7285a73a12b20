"""A manager that stalls past its intent's lease while allocating its nonce (issue 18), on a real PostgreSQL and
anvil: the first manager is held between taking a nonce from the counter and binding it to the intent, its lease
runs out and the second manager claims the intent. The first must not bind its nonce over the intent the second
follows now, nor consume a nonce nobody sends: it backs off, and every intent is mined once with no nonce gap."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from chain.client import ChainClient
from chain.nonces import SqlNonceAllocator
from chain.signers import Role, devnet_signer
from chain.transactions import Call, LifecycleSettings, TransactionManager
from store.chain import SqlChainStore
from tests.integration.chain.support import TOKEN_ARTIFACTS, deploy_token, holder, manager

pytestmark = pytest.mark.integration

STALLED = "stalled"


class _StallOnce:
    """A ``before_bind`` hook that holds the allocation of the ``STALLED`` intent (in its worker thread, the
    account's counter row locked) until the test lets it go."""

    def __init__(self) -> None:
        self.reached, self.go = threading.Event(), threading.Event()

    def __call__(self, keys: Sequence[str]) -> None:
        if STALLED in keys and not self.reached.is_set():
            self.reached.set()
            assert self.go.wait(30), "the stalled allocation was never let go"


def _owner(
    client: ChainClient, store: SqlChainStore, owner: str, stall: _StallOnce | None = None
) -> TransactionManager:
    return TransactionManager(
        client,
        devnet_signer(Role.DEPLOYER),
        store,
        SqlNonceAllocator(store, before_bind=stall),
        settings=LifecycleSettings(confirmations=1, poll_interval=0.05, claim_after=30.0, stuck_after=60.0),
        revert_artifacts=TOKEN_ARTIFACTS,
        owner=owner,
    )


async def _owned_by(store: SqlChainStore, key: str, owner: str) -> None:
    async with asyncio.timeout(10):
        while True:
            intent = await store.get_intent(key)
            if intent is not None and intent.owner == owner:
                return
            await asyncio.sleep(0.02)


async def test_an_owner_stalled_while_allocating_backs_off_and_leaves_no_nonce_gap(
    client: ChainClient, pg_store: SqlChainStore
) -> None:
    async with manager(client, pg_store, Role.DEPLOYER) as deployer:
        token = await deploy_token(deployer)  # nonce 0
    stall = _StallOnce()
    first = await _owner(client, pg_store, "first", stall).start()
    second = await _owner(client, pg_store, "second").start()
    try:
        stalled_call = Call.function(token, "mint", holder(0), 1)
        submitted = asyncio.create_task(first.submit(STALLED, stalled_call))
        assert await asyncio.to_thread(stall.reached.wait, 10)
        # the first stalls past its lease (as its lease running out would) and the second claims the intent; the
        # second's own allocation then waits for the counter row the stalled one holds
        await pg_store.release_leases(client.config.chain_id, first.account.address, "first")
        claimant = asyncio.create_task(second.wait(STALLED, within=30))
        await _owned_by(pg_store, STALLED, "second")
        stall.go.set()
        await submitted  # the first learns it lost the intent and lets it go, without raising
        assert first.in_flight == 0
        receipt = await claimant
        # later sends of both managers go through: a nonce taken and never sent would hold them all back
        after = await asyncio.gather(
            first.submit_and_wait("after:first", Call.function(token, "mint", holder(1), 2), within=30),
            second.submit_and_wait("after:second", Call.function(token, "mint", holder(2), 4), within=30),
        )
    finally:
        stall.go.set()
        await second.close()
        await first.close()

    assert [r.status for r in (receipt, *after)] == ["confirmed"] * 3
    assert sorted(r.nonce for r in (receipt, *after)) == [1, 2, 3]  # no gap, none twice
    stored = await pg_store.get_intent(STALLED)
    assert stored is not None
    assert stored.owner == "second"
    assert stored.nonce == receipt.nonce  # the stalled manager's nonce was not bound over the claimant's
    assert [a.tx_hash for a in stored.attempts] == [receipt.tx_hash]  # signed and sent once
    sender = devnet_signer(Role.DEPLOYER).address
    assert int(await client.rpc("eth_getTransactionCount", sender, "latest"), 16) == 4
    supply = int(await client.rpc("eth_call", {"to": token.address, "data": "0x18160ddd"}, "latest"), 16)
    assert supply == 1 + 2 + 4  # every mint once
