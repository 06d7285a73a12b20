"""Fee bumps the node refuses, or that cannot be recorded, on a real anvil: the intent is bumped again later (a
resumed one too), and one intent's failure does not hold back the others' bumps nor the watcher's rounds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from web3 import Web3

from chain.client import ChainClient
from chain.fees import Fees
from chain.signers import Role, devnet_signer
from chain.transactions import Call
from chain.types import Wei
from store.chain import AttemptRecord, IntentRecord, SqlChainStore
from tests.integration.chain.support import manager

pytestmark = pytest.mark.integration

DEAD = Web3.to_checksum_address("0x000000000000000000000000000000000000dEaD")
SENDER = devnet_signer(Role.DEPLOYER).address


@pytest.fixture(params=["sqlite", "pg"])
def store(request: pytest.FixtureRequest) -> SqlChainStore:
    """The SQL store on SQLite and on PostgreSQL."""
    chosen: SqlChainStore = request.getfixturevalue(f"{request.param}_store")
    return chosen


async def _stored(store: SqlChainStore, key: str) -> IntentRecord:
    intent = await store.get_intent(key)
    assert intent is not None
    return intent


async def _until(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


def _tick_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "chain.transactions" and r.exc_info]


async def test_a_bump_the_node_refused_is_sent_once_the_account_can_pay_for_it(
    client: ChainClient, store: SqlChainStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A relayer low on funds pays for its transaction, not for the 12.5 % bump: the node refuses the bump
    ("insufficient funds"). Its row stayed signed; the next bump, the same fees against an unchanged market, was the
    same bytes and hash, the attempts' key, and its write failed every round of the watcher (the rest of the round
    skipped, nothing in ``last_error``): the bump was never sent, not even once the account was topped up."""
    caplog.set_level(logging.INFO, logger="chain.transactions")
    async with manager(client, store, stuck_after=0.5) as txs:
        balance = await client.rpc("eth_getBalance", SENDER, "latest")
        await client.rpc("evm_setAutomine", False)
        try:
            sent = await txs.submit("short-of-funds", Call.transfer(DEAD, 0))
            first = (await _stored(store, "short-of-funds")).attempts[0]
            await client.rpc("anvil_setBalance", SENDER, hex(first.gas * first.max_fee_per_gas))  # not for a bump
            await asyncio.sleep(2.0)  # bumps every stuck_after, each refused
            refused = (await _stored(store, "short-of-funds")).attempts
            assert [a.status for a in refused] == ["sent", "rejected"]
            assert refused[1].tx_hash not in txs._by_hash  # not looked for in blocks while nobody holds it
            assert not _tick_failures(caplog), "the watcher failed its rounds"
            assert txs.last_error is not None
            assert "insufficient funds" in txs.last_error
            await client.rpc("anvil_setBalance", SENDER, balance)  # topped up: the bump is sent at the next one
            await _until(lambda: _has(client, refused[1].tx_hash))  # signed again as the same bytes, accepted
        finally:
            await client.rpc("evm_setAutomine", True)
        await client.rpc("evm_mine")
        receipt = await txs.wait("short-of-funds", within=10)
    assert receipt.tx_hash != sent.tx_hash  # a bump was mined: the refused one (sent as the same bytes) or a later one
    assert not _tick_failures(caplog)


async def _has(client: ChainClient, tx_hash: str) -> bool:
    """Whether the node holds ``tx_hash`` (pooled or mined)."""
    return bool(await client.rpc("eth_getTransactionByHash", tx_hash))


async def test_a_bump_that_cannot_be_recorded_holds_back_neither_the_others_nor_the_round(
    client: ChainClient, sqlite_store: SqlChainStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stuck transactions; the write of the first one's bump fails. That failure left the replacement loop, so
    the second was never bumped, and the watcher's round failed with it every time."""
    record_signed = sqlite_store.record_signed

    async def failing_for_one(key: str, attempt: AttemptRecord, **kw: Any) -> bool:
        if key == "unwritable":
            raise OperationalError("INSERT INTO chain_tx_attempts", {}, Exception("disk I/O error"))
        return await record_signed(key, attempt, **kw)

    monkeypatch.setattr(sqlite_store, "record_signed", failing_for_one)
    async with manager(client, sqlite_store, stuck_after=0.5) as txs:
        await client.rpc("evm_setAutomine", False)
        try:
            await txs.submit("unwritable", Call.transfer(DEAD, 1))  # nonce 0, bumped first
            await txs.submit("bumped", Call.transfer(DEAD, 2))
            await _until(lambda: _attempts(sqlite_store, "bumped", 2))
        finally:
            await client.rpc("evm_setAutomine", True)
        assert txs.last_error is not None
        assert "unwritable" in txs.last_error
        assert "disk I/O" in txs.last_error
        await client.rpc("evm_mine")
        assert (await txs.wait("bumped", within=10)).tx_hash == (await _stored(sqlite_store, "bumped")).tx_hash


async def _attempts(store: SqlChainStore, key: str, at_least: int) -> bool:
    return len((await _stored(store, key)).attempts) >= at_least


async def test_a_base_fee_above_the_cap_postpones_the_bumps_by_stuck_after_not_by_a_round(
    client: ChainClient, sqlite_store: SqlChainStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The base fee climbs past the chain's cap while a transaction is stuck: no bump can be priced. The fee read
    raised out of the round, every round (twenty a second on a devnet), the rest of the round skipped; now the bumps
    wait another ``stuck_after`` and ``last_error`` says why."""
    caplog.set_level(logging.WARNING, logger="chain.transactions")
    async with manager(client, sqlite_store, stuck_after=0.5) as txs:
        await client.rpc("evm_setAutomine", False)
        try:
            sent = await txs.submit("over-the-cap", Call.transfer(DEAD, 1))
            await client.rpc("anvil_setNextBlockBaseFeePerGas", hex(10**12))  # 1,000 gwei, the cap 500
            await client.rpc("evm_mine")
            await asyncio.sleep(2.0)
            warned = [r for r in caplog.records if "exceeds the chain's cap" in r.getMessage()]
            assert 1 <= len(warned) <= 5, f"{len(warned)} warnings in 2 s"
            assert txs.last_error is not None
            assert "exceeds the chain's cap" in txs.last_error
            assert len((await _stored(sqlite_store, "over-the-cap")).attempts) == 1
            await client.rpc("anvil_setNextBlockBaseFeePerGas", hex(10**8))  # the spike ends
        finally:
            await client.rpc("evm_setAutomine", True)
        await client.rpc("evm_mine")
        assert (await txs.wait("over-the-cap", within=10)).nonce == sent.nonce  # the original or, once priced, a bump


async def test_a_resumed_intent_whose_bump_the_node_calls_underpriced_is_bumped_again(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    """A claimant resumes an intent whose newest attempt the node calls underpriced: the node holds a pricier one
    under its nonce (a bump the node refused as underpriced is kept, signed, for the next bump to go above it; here
    one signed below the original stands for it). That answer to the first broadcast left the resumed intent without
    the clocks a first acceptance sets: never broadcast again nor bumped, it held back every later transaction."""
    async with manager(client, sqlite_store, stuck_after=60.0) as first:
        await client.rpc("evm_setAutomine", False)
        try:
            sent = await first.submit("resumed", Call.transfer(DEAD, 1))
            original = (await _stored(sqlite_store, "resumed")).attempts[0]
            fees = Fees(Wei(original.max_fee_per_gas - 1), Wei(original.max_priority_fee_per_gas - 1))
            low = first._sign(DEAD, b"", 1, original.nonce, original.gas, fees)
            assert await sqlite_store.record_signed("resumed", low, replaces=sent.tx_hash, owner=first.owner)
        except BaseException:
            await client.rpc("evm_setAutomine", True)
            raise
    try:
        async with manager(client, sqlite_store, stuck_after=0.5) as claimant:  # claims it at start
            await _until(lambda: _attempts(sqlite_store, "resumed", 3))
            bump = (await _stored(sqlite_store, "resumed")).attempts[2]
            await _until(lambda: _has(client, bump.tx_hash))
            await client.rpc("evm_setAutomine", True)
            await client.rpc("evm_mine")
            receipt = await claimant.wait("resumed", within=10)
    finally:
        await client.rpc("evm_setAutomine", True)
    assert receipt.tx_hash not in (sent.tx_hash, low.tx_hash)
