"""The watcher's scan of blocks for our receipts: what an idle spell costs, and a block a lagging node lacks."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from chain.client import ChainClient
from chain.transactions import Call
from store.chain import CONFIRMED, SqlChainStore
from tests.integration.chain.support import manager

pytestmark = pytest.mark.integration

DEAD = "0x000000000000000000000000000000000000dEaD"


def _counted(client: ChainClient, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the client's JSON-RPC calls by method."""
    calls: Counter[str] = Counter()
    rpc = client.rpc

    async def counting(method: str, *params: Any) -> Any:
        calls[method] += 1
        return await rpc(method, *params)

    monkeypatch.setattr(client, "rpc", counting)
    return calls


async def test_an_intent_after_an_idle_spell_does_not_rescan_the_idle_blocks(
    client: ChainClient, sqlite_store: SqlChainStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 blocks pass while the manager follows nothing. The scan did not move while idle, so the next intent had the
    watcher read every one of them, one eth_getBlockReceipts each, before finding it (2,000 blocks took anvil past
    the client's 5 s timeout once in CI)."""
    calls = _counted(client, monkeypatch)
    async with manager(client, sqlite_store) as txs:
        await txs.submit_and_wait("before", Call.transfer(DEAD, 1), within=10)
        await client.rpc("anvil_mine", hex(300))  # the chain moves on, the account idle
        calls.clear()
        receipt = await txs.submit_and_wait("after", Call.transfer(DEAD, 2), within=30)
    assert receipt.status == CONFIRMED
    assert calls["eth_getBlockReceipts"] <= 3, calls


async def test_a_block_a_lagging_node_does_not_have_yet_is_read_again(
    client: ChainClient, sqlite_store: SqlChainStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node that answers eth_getBlockReceipts is behind the one that gave the head: null for the block holding our
    transaction. The block was taken as empty and never read again, and the intent waited for ever."""
    rpc = client.rpc
    lagged: list[str] = []

    async def lagging(method: str, *params: Any) -> Any:
        answer = await rpc(method, *params)
        if method == "eth_getBlockReceipts" and answer and not lagged:
            lagged.append(params[0])
            return None
        return answer

    monkeypatch.setattr(client, "rpc", lagging)
    async with manager(client, sqlite_store) as txs:
        receipt = await txs.submit_and_wait("mined", Call.transfer(DEAD, 1), within=3)
    assert lagged == [hex(receipt.block_number)]
