"""``TurnBatch``: the items of one event-loop turn are sent together, each caller gets its own result; an error
reaches every caller of its batch; a caller cancelled meanwhile leaves the others their results."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from providers._batching import TurnBatch

pytestmark = pytest.mark.unit


class _Sender:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.fail: Exception | None = None
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return [item * 10 for item in items]


async def test_the_items_of_one_turn_go_together_and_each_caller_gets_its_own_result() -> None:
    sender = _Sender()
    batch: TurnBatch[int, int] = TurnBatch(sender)
    assert await asyncio.gather(*(batch.submit(n) for n in range(10))) == [n * 10 for n in range(10)]
    assert sender.batches == [list(range(10))]
    assert await batch.submit(7) == 70  # alone in its turn: sent alone
    assert [await batch.submit(n) for n in (1, 2)] == [10, 20]
    assert sender.batches[1:] == [[7], [1], [2]]
    assert (batch.sends, batch.items) == (4, 13)


async def test_an_error_reaches_every_caller_of_the_batch_and_the_next_batch_is_sent_again() -> None:
    sender = _Sender()
    batch: TurnBatch[int, int] = TurnBatch(sender)
    sender.fail = ConnectionError("redis down")
    results = await asyncio.gather(*(batch.submit(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results), results
    sender.fail = None
    assert await batch.submit(4) == 40


async def test_a_caller_cancelled_while_its_batch_is_in_flight_leaves_the_others_their_results() -> None:
    sender = _Sender()
    sender.gate.clear()
    batch: TurnBatch[int, int] = TurnBatch(sender)
    tasks = [asyncio.create_task(batch.submit(n)) for n in range(3)]
    for _ in range(3):  # the callers' turn, then the send's
        await asyncio.sleep(0)
    assert sender.batches == [[0, 1, 2]]
    tasks[1].cancel()
    sender.gate.set()
    assert await tasks[0] == 0
    assert await tasks[2] == 20
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]


async def test_a_delayed_batch_gathers_the_posts_of_its_window_and_drain_sends_at_once() -> None:
    """Posted items (their callers do not wait) of one window go in one send, across turns; ``drain`` sends what
    waits without waiting for the window, and returns once every send so far is answered."""
    sender = _Sender()
    batch: TurnBatch[int, int] = TurnBatch(sender, delay=0.2)
    first = batch.post(1)
    await asyncio.sleep(0)
    second = batch.post(2)
    await asyncio.sleep(0)
    assert sender.batches == [], "nothing sent before the window ends"
    assert (await first, await second) == (10, 20)
    assert sender.batches == [[1, 2]]

    third = batch.post(3)
    await batch.drain()
    assert sender.batches[1:] == [[3]]
    assert third.result() == 30
    await batch.drain()  # nothing waiting: returns at once
    assert (batch.sends, batch.items) == (2, 3)
