"""``read_views`` over a node that caps a JSON-RPC batch's size (geth's ``--rpc.batch-request-limit``, 1,000 by
default, and hosted nodes' caps): more calls than ``VIEW_BATCH_LIMIT`` go as several batches, none past the limit,
their answers in the calls' order; calls at ``latest`` are pinned to one head read first, so the read is one
snapshot; a batch the node refuses still raises ChainError."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import decode, encode

from chain.errors import ChainError
from chain.views import VIEW_BATCH_LIMIT, read_views, view

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]

RATE = view("LendingPool", "modelRateBps")
POOL = "0x" + "11" * 20


class CappedNode:
    """A provider whose head is block ``head``, answering each ``eth_call`` with its principal argument plus its block
    number × 10⁶, and refusing a batch of more than ``cap`` calls whole, with one error object, as geth does."""

    def __init__(self, cap: int, head: int = 41) -> None:
        self.cap, self.head = cap, head
        self.batches: list[list[Any]] = []
        self.requests: list[str] = []

    async def make_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        self.requests.append(method)
        assert method == "eth_blockNumber"
        return {"jsonrpc": "2.0", "id": 0, "result": hex(self.head)}

    async def make_batch_request(self, requests: list[tuple[str, list[Any]]]) -> Any:
        self.batches.append(requests)
        if len(requests) > self.cap:
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch too large"}}
        answers = []
        for n, (_, (call, block)) in enumerate(requests):
            (principal,) = decode(["uint256"], bytes.fromhex(call["data"][10:]))
            number = self.head if block == "latest" else int(block, 16)
            value = int(principal) + number * 10**6
            answers.append({"id": n, "result": "0x" + encode(["uint32"], [value]).hex()})
        return answers


async def test_calls_past_the_limit_go_as_batches_within_it_in_order() -> None:
    node = CappedNode(cap=VIEW_BATCH_LIMIT)
    calls = [RATE.call(POOL, n, block=7) for n in range(2 * VIEW_BATCH_LIMIT + 1)]
    assert await read_views(node, calls) == [7 * 10**6 + n for n in range(len(calls))]  # type: ignore[arg-type]
    assert [len(batch) for batch in node.batches] == [VIEW_BATCH_LIMIT, VIEW_BATCH_LIMIT, 1]
    assert node.requests == [], "calls pinned to a number need no head"


async def test_latest_is_pinned_to_one_head_when_split() -> None:
    node = CappedNode(cap=10, head=41)
    calls = [RATE.call(POOL, n) for n in range(25)] + [RATE.call(POOL, 99, block=3)]
    answers = await read_views(node, calls, batch_limit=10)  # type: ignore[arg-type]
    assert answers == [41 * 10**6 + n for n in range(25)] + [3 * 10**6 + 99]
    assert node.requests == ["eth_blockNumber"]
    blocks = {params[1] for batch in node.batches for _, params in batch}
    assert blocks == {hex(41), hex(3)}, "no batch read at latest: the head could move between them"
    assert [len(batch) for batch in node.batches] == [10, 10, 6]


async def test_a_read_that_fits_is_one_batch_at_its_own_tag() -> None:
    node = CappedNode(cap=VIEW_BATCH_LIMIT)
    assert await read_views(node, [RATE.call(POOL, 5), RATE.call(POOL, 6)]) == [41 * 10**6 + 5, 41 * 10**6 + 6]  # type: ignore[arg-type]
    assert [[params[1] for _, params in batch] for batch in node.batches] == [["latest", "latest"]]
    assert node.requests == []


async def test_a_refused_batch_still_raises() -> None:
    node = CappedNode(cap=5)
    with pytest.raises(ChainError, match=r"refused a batch of 10 views: .*batch too large"):
        await read_views(node, [RATE.call(POOL, n, block=1) for n in range(10)], batch_limit=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        await read_views(node, [RATE.call(POOL, 1, block=1)], batch_limit=0)  # type: ignore[arg-type]
