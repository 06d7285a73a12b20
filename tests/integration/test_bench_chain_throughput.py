"""bench.chain_throughput's raw side on a real anvil: the fastest honest client of the node — presigned transfers sent
in JSON-RPC batches as the lifecycle sends them, confirmed by one block-receipts call a block — not one HTTP request
a transaction and a receipt poll per pending hash, which cost more CPU than the lifecycle it was measured against."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from bench import chain_throughput
from chain.client import ChainClient
from chain.transactions._broadcasts import MAX_BATCH

pytestmark = pytest.mark.integration

TRANSFERS = 250


def test_the_raw_side_sends_in_batches_and_confirms_by_block_receipts(monkeypatch: pytest.MonkeyPatch) -> None:
    singles: Counter[str] = Counter()
    batches: list[Counter[str]] = []
    rpc, batch = ChainClient.rpc, ChainClient.batch

    async def counted_rpc(self: ChainClient, method: str, *params: Any) -> Any:
        singles[method] += 1
        return await rpc(self, method, *params)

    async def counted_batch(self: ChainClient, *calls: tuple[str, list[Any]]) -> list[Any]:
        batches.append(Counter(method for method, _ in calls))
        return await batch(self, *calls)

    monkeypatch.setattr(ChainClient, "rpc", counted_rpc)
    monkeypatch.setattr(ChainClient, "batch", counted_batch)

    run = asyncio.run(chain_throughput.raw_run(TRANSFERS, 0.05))

    assert run.tx_per_second > 0
    assert singles["eth_sendRawTransaction"] == 0
    assert singles["eth_getTransactionReceipt"] == 0
    assert [b["eth_sendRawTransaction"] for b in batches] == [MAX_BATCH, MAX_BATCH, TRANSFERS - 2 * MAX_BATCH]
    assert all(set(b) == {"eth_sendRawTransaction"} for b in batches)
    # each mined block read once: no more receipts calls than blocks mined (the interval miner's evm_mine calls)
    assert 0 < singles["eth_getBlockReceipts"] <= singles["evm_mine"]
