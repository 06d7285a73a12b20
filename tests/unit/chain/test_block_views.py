"""``BlockViews``: calls pinned to a block number are read once and shared, by concurrent callers and later ones; a
failed read is not kept; a caller's cancellation does not cancel the shared read; ``latest`` is refused; the kept
reads are bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from eth_abi.abi import encode

from chain.errors import ChainError
from chain.views import BlockViews, view

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]

RATE = view("LendingPool", "modelRateBps")
POOL = "0x" + "11" * 20


class Node:
    """A provider answering every ``eth_call`` with its block number (as uint256), counting the batches; ``fail``
    answers the next batch with an error, ``gate`` holds the batches until set."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.fail = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def make_batch_request(self, requests: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        self.batches.append(requests)
        await self.gate.wait()
        if self.fail:
            self.fail = False
            return [{"id": n, "error": {"code": -32000, "message": "down"}} for n, _ in enumerate(requests)]
        return [
            {"id": n, "result": "0x" + encode(["uint32"], [int(params[1], 16)]).hex()}
            for n, (_, params) in enumerate(requests)
        ]


async def test_concurrent_and_later_reads_of_a_block_share_one_batch() -> None:
    node = Node()
    views = BlockViews(node)  # type: ignore[arg-type]
    node.gate.clear()
    reads = [asyncio.ensure_future(views.read([RATE.call(POOL, 1_500, block=7)])) for _ in range(5)]
    await asyncio.sleep(0)
    node.gate.set()
    assert await asyncio.gather(*reads) == [[7]] * 5
    assert await views.read([RATE.call(POOL, 1_500, block=7)]) == [7]
    assert len(node.batches) == 1
    assert await views.read([RATE.call(POOL, 1_500, block=8)]) == [8], "another block: read again"
    assert await views.read([RATE.call(POOL, 2_000, block=8)]) == [8], "other arguments: read again"
    assert len(node.batches) == 3


async def test_a_failed_read_is_not_kept() -> None:
    node = Node()
    views = BlockViews(node)  # type: ignore[arg-type]
    node.fail = True
    with pytest.raises(ChainError):
        await views.read([RATE.call(POOL, 1, block=3)])
    assert await views.read([RATE.call(POOL, 1, block=3)]) == [3]
    assert len(node.batches) == 2


async def test_a_cancelled_caller_leaves_the_shared_read_to_the_others() -> None:
    node = Node()
    views = BlockViews(node)  # type: ignore[arg-type]
    node.gate.clear()
    first = asyncio.ensure_future(views.read([RATE.call(POOL, 1, block=4)]))
    second = asyncio.ensure_future(views.read([RATE.call(POOL, 1, block=4)]))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    node.gate.set()
    assert await second == [4]
    assert first.cancelled()
    assert len(node.batches) == 1


async def test_latest_is_refused_and_the_kept_reads_are_bounded() -> None:
    node = Node()
    views = BlockViews(node, size=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="block number"):
        await views.read([RATE.call(POOL, 1)])
    for block in range(10):
        await views.read([RATE.call(POOL, 1, block=block)])
    assert len(views) == 3
    await views.read([RATE.call(POOL, 1, block=9)])
    assert len(node.batches) == 10, "the newest kept"
    await views.read([RATE.call(POOL, 1, block=0)])
    assert len(node.batches) == 11, "the oldest dropped"
