"""What one submit costs the database up to its broadcast (the relay's submit an accept waits on): the statements and
transactions the submit's own tasks and threads send, counted on a real PostgreSQL with a real anvil. The nonce's
binding and the signed attempt's write are one unit of work (``SqlNonceAllocator.allocate_signed``), and a call whose
gas is known (an accept's carries its estimate) is inserted as an intent in that same unit of work: one transaction
to its broadcast; a call the relay must estimate costs two (its insert first). And they run on the chain store's own
threads: a default executor kept busy by the rest of the process does not hold them up."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from sqlalchemy import Engine, event

from chain.client import ChainClient
from chain.devnet import Devnet
from chain.errors import IntentConflict
from chain.transactions import Call, Receipt
from chain.types import Wei
from store.chain import CONFIRMED, SIGNED, SqlChainStore
from tests.integration.chain.support import manager

pytestmark = pytest.mark.integration

DEAD = "0x000000000000000000000000000000000000dEaD"
# set around the submits only: the worker threads of their units of work inherit it (asyncio.to_thread copies the
# context), the watcher's task (started before) does not
SUBMITTING: ContextVar[bool] = ContextVar("submitting", default=False)


class _Counted:
    def __init__(self) -> None:
        self.statements: list[str] = []
        self.commits = 0

    def statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if SUBMITTING.get():
            self.statements.append(" ".join(statement.split()[:3]))

    def commit(self, _conn: Any) -> None:
        if SUBMITTING.get():
            self.commits += 1


@pytest.fixture
def counted(pg_store: SqlChainStore) -> Iterator[_Counted]:
    engine: Engine = pg_store.sessions.kw["bind"]
    counted = _Counted()
    event.listen(engine, "before_cursor_execute", counted.statement)
    event.listen(engine, "commit", counted.commit)
    yield counted
    event.remove(engine, "before_cursor_execute", counted.statement)
    event.remove(engine, "commit", counted.commit)


async def test_a_submit_costs_one_transaction_to_its_broadcast(
    client: ChainClient, pg_store: SqlChainStore, counted: _Counted
) -> None:
    async with manager(client, pg_store) as txs:
        await txs.submit_and_wait("warm", Call.transfer(DEAD, 1), within=30)  # the nonce row exists from here
        await client.rpc("evm_setAutomine", False)  # nothing mined: the watcher's writes stay out of the way
        try:
            token = SUBMITTING.set(True)
            try:
                for i in range(5):  # one at a time: each its own batch, as an accept's submit mostly is
                    submitted = await txs.submit(f"alone:{i}", Call.transfer(DEAD, 1))
                    assert submitted.status in ("sent", SIGNED)
                alone = (len(counted.statements), counted.commits)
                await asyncio.gather(*(txs.submit(f"together:{i}", Call.transfer(DEAD, 1)) for i in range(20)))
                together = len(counted.statements) - alone[0], counted.commits - alone[1]
                # no gas: the relay estimates it, and the intent is inserted first
                estimated = await txs.submit("estimated", Call(to=to_checksum_address(DEAD), value=Wei(1)))
                assert estimated.status in ("sent", SIGNED)
                commits_estimated = counted.commits - alone[1] - together[1]
            finally:
                SUBMITTING.reset(token)
            first = await txs.submit("alone:0", Call.transfer(DEAD, 1))  # stored already: nothing new taken
            with pytest.raises(IntentConflict):
                await txs.submit("alone:0", Call.transfer(DEAD, 2))
        finally:
            await client.rpc("evm_setAutomine", True)
        receipts = await asyncio.gather(*(txs.wait(f"alone:{i}", within=30) for i in range(5)))
        await txs.wait("estimated", within=30)
    statements, commits = alone
    assert commits == 5, counted.statements  # the intent, its nonce and its signed attempt together
    # INSERT intent, SELECT counter FOR UPDATE, SELECT gaps, UPDATE intent, INSERT attempt, UPDATE counter (the ORM's
    # flush at commit)
    assert statements <= 6 * 5, counted.statements[:20]
    assert together[1] < 20  # grouped: fewer units of work than submits ...
    assert together[0] < 6 * 20  # ... and fewer statements
    assert commits_estimated == 2  # the intent's insert; the nonce with the signed attempt
    assert first.tx_hash == receipts[0].tx_hash
    assert sorted(receipt.nonce for receipt in receipts) == [1, 2, 3, 4, 5]


def test_a_submit_does_not_queue_behind_a_busy_default_executor(anvil: Devnet, sqlite_store: SqlChainStore) -> None:
    """A process whose default executor is taken (the request path's database work, say) for longer than the whole
    submit: the intent, the nonce with its signed attempt, the sent and mined records and the lease renewals run on
    the chain store's own threads, so the transaction is confirmed meanwhile."""

    async def busy_process() -> tuple[Receipt, set[str]]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        release = threading.Event()
        busy = loop.run_in_executor(None, release.wait, 60)  # the only default thread, held to the end
        client = ChainClient(anvil.config(), timeout=5.0)
        try:
            async with asyncio.timeout(30):
                await client.connect()
                async with manager(client, sqlite_store) as txs:
                    receipt = await txs.submit_and_wait("busy", Call.transfer(DEAD, 1), within=20)
                    await client.rpc("evm_setAutomine", False)  # stays open (not mined) for the renewal
                    await txs.submit("renewed", Call.transfer(DEAD, 1))
                    held = await sqlite_store.renew_leases(
                        client.config.chain_id, txs.account.address, txs.owner, txs._lease
                    )
            assert not busy.done()  # the default executor was busy all along
            return receipt, held
        finally:
            release.set()
            await busy
            await client.close()

    receipt, held = asyncio.run(busy_process())
    assert receipt.status == CONFIRMED
    assert receipt.nonce == 0
    assert "renewed" in held
