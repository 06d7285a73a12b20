"""Waiting with a deadline inside loops that end by cancellation (chain/waiting.py)."""

from __future__ import annotations

import asyncio

from chain.waiting import wait_at_most


async def test_a_cancellation_arriving_as_the_event_is_set_ends_the_loop() -> None:
    wake = asyncio.Event()
    rounds = 0

    async def watch() -> None:
        nonlocal rounds
        while True:
            await wait_at_most(wake.wait(), 10.0)
            wake.clear()
            rounds += 1
            if rounds > 3:  # a loop that swallowed its cancellation stops here, so the test cannot hang
                return

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.01)  # the loop waits on its event
    wake.set()
    task.cancel()
    for _ in range(4):
        await asyncio.sleep(0)
        wake.set()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done == {task}
    assert task.cancelled()


async def test_the_deadline_is_not_an_error_and_a_result_is_awaited() -> None:
    wake = asyncio.Event()
    await wait_at_most(wake.wait(), 0.01)
    assert not wake.is_set()
    asyncio.get_running_loop().call_later(0.01, wake.set)
    await wait_at_most(wake.wait(), 5)
    assert wake.is_set()
