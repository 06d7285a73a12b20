"""The Redis nonce allocator against a real Redis: two allocators on two clients drawing at once (in two threads,
each with its own event loop) hand out every nonce once with no gap; released nonces are reused first by either;
the floor holds for both; and two transaction managers with separate stores (as two processes have) send from
one account through it with every nonce used once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis
from web3 import Web3

from chain.client import ChainClient
from chain.errors import TransactionRejected
from chain.nonces import AccountRef, RedisNonceAllocator
from chain.signers import Role, devnet_signer
from chain.transactions import Call, LifecycleSettings, TransactionManager
from chain.types import Nonce
from tests.integration.chain.support import chain_store, deploy_token, holder

pytestmark = pytest.mark.integration

ACCOUNT = AccountRef(31337, devnet_signer(Role.DEPLOYER).address)
DEAD_ADDRESS = Web3.to_checksum_address("0x000000000000000000000000000000000000dEaD")


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so that tests never share counters on the session's Redis."""
    return f"test:{uuid.uuid4().hex}"


@asynccontextmanager
async def redis_pair(redis_url: str) -> AsyncIterator[tuple[Redis, Redis]]:
    """Two clients (two connection pools), as two processes have; made in the test's own event loop."""
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        yield first, second
    finally:
        await first.aclose()
        await second.aclose()


def _draw(redis_url: str, prefix: str, count: int) -> list[int]:
    """``count`` concurrent allocations through an allocator of its own, on a client and event loop of its own."""

    async def draw() -> list[int]:
        client = Redis.from_url(redis_url)
        try:
            allocator = RedisNonceAllocator(client, prefix=prefix)
            return list(await asyncio.gather(*(allocator.allocate(ACCOUNT, f"k{i}") for i in range(count))))
        finally:
            await client.aclose()

    return asyncio.run(draw())


async def test_two_allocators_drawing_at_once_never_duplicate_and_leave_no_gap(redis_url: str, prefix: str) -> None:
    first, second = await asyncio.gather(
        asyncio.to_thread(_draw, redis_url, prefix, 400), asyncio.to_thread(_draw, redis_url, prefix, 400)
    )
    assert len(first) == len(second) == 400
    assert not set(first) & set(second)
    assert sorted(first + second) == list(range(800))


async def test_released_nonces_go_to_either_allocator_first_and_the_floor_holds_for_both(
    redis_url: str, prefix: str
) -> None:
    async with redis_pair(redis_url) as clients:
        await _release_and_floor(*(RedisNonceAllocator(client, prefix=prefix) for client in clients))


async def _release_and_floor(one: RedisNonceAllocator, two: RedisNonceAllocator) -> None:
    assert [await one.allocate(ACCOUNT, f"a{i}") for i in range(3)] == [0, 1, 2]
    assert await two.allocate(ACCOUNT, "b0") == 3
    await one.release(ACCOUNT, Nonce(1))
    await one.release(ACCOUNT, Nonce(9))  # never handed out: ignored
    assert await two.allocate(ACCOUNT, "b1") == 1
    assert await one.allocate(ACCOUNT, "a3") == 4
    assert await two.handed_out(ACCOUNT) == 5  # released ones below the counter do not lower it
    other_chain = AccountRef(31338, ACCOUNT.address)
    assert await two.allocate(other_chain, "c0") == 0  # each (chain, account) has its own counter
    await two.release(ACCOUNT, Nonce(2))
    await one.floor(ACCOUNT, Nonce(10))  # the chain has used 0..9: released 2 is dropped, the counter jumps
    assert await two.allocate(ACCOUNT, "b2") == 10
    await two.floor(ACCOUNT, Nonce(5))  # a lower floor never lowers the counter
    assert await one.allocate(ACCOUNT, "a4") == 11
    await one.release(ACCOUNT, Nonce(11))
    await two.floor(ACCOUNT, Nonce(11), handed_out=Nonce(15))  # the counter jumps; released 11 is kept
    assert [await one.allocate(ACCOUNT, f"a{i}") for i in (5, 6)] == [11, 15]


async def test_two_managers_with_their_own_stores_share_one_account_through_redis(
    client: ChainClient, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    settings = LifecycleSettings(confirmations=1, poll_interval=0.05, stuck_after=60.0)
    (store_a, engine_a), (store_b, engine_b) = (chain_store(f"sqlite:///{tmp_path / f'{n}.db'}") for n in "ab")
    signer = devnet_signer(Role.DEPLOYER)
    try:
        async with redis_pair(redis_url) as clients:
            managers = [
                TransactionManager(client, signer, store, RedisNonceAllocator(redis, prefix=prefix), settings=settings)
                for store, redis in zip((store_a, store_b), clients, strict=True)
            ]
            async with managers[0] as first, managers[1] as second:
                token = await deploy_token(first)
                calls = [
                    (manager, f"mint:{name}:{i}", Call.function(token, "mint", holder(i), 1, gas=90_000))
                    for manager, name in ((first, "a"), (second, "b"))
                    for i in range(60)
                ]
                receipts = await asyncio.gather(*(m.submit_and_wait(key, call, 120) for m, key, call in calls))
    finally:
        engine_a.dispose()
        engine_b.dispose()
    assert sorted(r.nonce for r in receipts) == list(range(1, 121))  # nonce 0 deployed the token
    assert {r.status for r in receipts} == {"confirmed"}
    assert int(await client.rpc("eth_getTransactionCount", signer.address, "latest"), 16) == 121


async def test_the_same_call_again_at_a_nonce_the_node_refused_is_sent(
    client: ChainClient, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """The node refuses a transfer (the account cannot pay for its gas) and its nonce goes back to Redis; the same
    call under another intent takes that nonce with the same fees: the same bytes and hash as the refused attempt,
    whose row was the table's key (a unique violation, the intent never sent, on the code before)."""
    settings = LifecycleSettings(confirmations=1, poll_interval=0.05, stuck_after=60.0)
    store, engine = chain_store(f"sqlite:///{tmp_path / 'refused.db'}")
    signer = devnet_signer(Role.DEPLOYER)
    call = Call.transfer(DEAD_ADDRESS, 1)
    balance = await client.rpc("eth_getBalance", signer.address, "latest")
    await client.rpc("evm_setAutomine", False)  # one base fee for both: the same fees signed twice
    try:
        async with Redis.from_url(redis_url) as redis:
            allocator = RedisNonceAllocator(redis, prefix=prefix)
            async with TransactionManager(client, signer, store, allocator, settings=settings) as txs:
                await client.rpc("anvil_setBalance", signer.address, hex(1))
                with pytest.raises(TransactionRejected):
                    await txs.submit("refused", call)
                await client.rpc("anvil_setBalance", signer.address, balance)
                again = await txs.submit("again", call)
                await client.rpc("evm_setAutomine", True)
                await client.rpc("evm_mine")
                receipt = await txs.wait("again", within=30)
    finally:
        await client.rpc("evm_setAutomine", True)
        engine.dispose()
    assert receipt.status == "confirmed"
    assert receipt.tx_hash == again.tx_hash
