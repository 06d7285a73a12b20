"""What one submit costs PostgreSQL up to its broadcast (the relay's submit an accept waits on): the statements and
transactions the submit's own tasks and threads send, counted on a real PostgreSQL with a real anvil. The nonce's
binding and the signed attempt's write are one unit of work (``SqlNonceAllocator.allocate_signed``), so a new intent
costs two transactions: its insert, then nonce + signed attempt."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import pytest
from sqlalchemy import Engine, event

from chain.client import ChainClient
from chain.transactions import Call
from store.chain import SIGNED, SqlChainStore
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


async def test_a_submit_costs_two_transactions_to_its_broadcast(
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
            finally:
                SUBMITTING.reset(token)
        finally:
            await client.rpc("evm_setAutomine", True)
        receipts = await asyncio.gather(*(txs.wait(f"alone:{i}", within=30) for i in range(5)))
    statements, commits = alone
    assert commits == 2 * 5, counted.statements  # the intent's insert; the nonce with the signed attempt
    # INSERT intent; SELECT counter FOR UPDATE, UPDATE fence, SELECT gaps, UPDATE intent, INSERT attempt, UPDATE
    # counter (the ORM's flush at commit)
    assert statements <= 7 * 5, counted.statements[:20]
    together = len(counted.statements) - statements, counted.commits - commits
    assert together[1] < 2 * 20  # grouped: fewer units of work than submits ...
    assert together[0] < 7 * 20  # ... and fewer statements
    assert sorted(receipt.nonce for receipt in receipts) == [1, 2, 3, 4, 5]
