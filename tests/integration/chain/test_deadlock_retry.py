"""A chain-store unit of work that PostgreSQL aborts to break a deadlock is run again, whole, and succeeds: two
units of work lock two nonce counter rows in opposite orders (as a manager's lease renewal and its watcher's
outcomes, or two processes, lock intents in different orders), one of them is the deadlock's victim, and both
commit in the end."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable

import pytest

from store.chain import ChainRepository, SqlChainStore

pytestmark = pytest.mark.integration

CHAIN_ID = 31337
FIRST, SECOND = "0x" + "a1" * 20, "0x" + "b2" * 20


async def test_the_victim_of_a_deadlock_is_run_again_and_both_commit(pg_store: SqlChainStore) -> None:
    def counter_rows(repo: ChainRepository) -> None:
        for address in (FIRST, SECOND):
            repo.ensure_nonce_row(CHAIN_ID, address)

    await pg_store.run(counter_rows)
    holding = {FIRST: threading.Event(), SECOND: threading.Event()}
    runs: Counter[str] = Counter()

    def bump_both(first: str, second: str) -> Callable[[ChainRepository], int]:
        def work(repo: ChainRepository) -> int:
            runs[first] += 1
            repo.lock_nonce_row(CHAIN_ID, first).next_nonce += 1
            holding[first].set()
            assert holding[second].wait(10), "the other unit of work never took its first row"
            row = repo.lock_nonce_row(CHAIN_ID, second)  # the other holds it and waits for ours: a deadlock
            row.next_nonce += 1
            return row.next_nonce

        return work

    await asyncio.gather(pg_store.run(bump_both(FIRST, SECOND)), pg_store.run(bump_both(SECOND, FIRST)))

    assert sorted(runs.values()) == [1, 2], f"one of the two should have been the victim and run again: {runs}"
    counters = await pg_store.run(lambda repo: [repo.lock_nonce_row(CHAIN_ID, a).next_nonce for a in (FIRST, SECOND)])
    assert counters == [2, 2], "each counter bumped once by each unit of work, the victim's first run rolled back"
