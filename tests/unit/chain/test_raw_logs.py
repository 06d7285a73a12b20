"""``fetch_raw_logs`` over a fake node: a range whose call runs out of its timeout is halved and read in parts, and
only a single block over the timeout raises."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest
from eth_utils.address import to_checksum_address

from chain.client import ChainClient
from chain.logs import LogQueryError, fetch_raw_logs

ADDRESS = to_checksum_address("0x" + "11" * 20)


def _client(slow_over: int) -> tuple[ChainClient, list[tuple[int, int]]]:
    """A node that answers ranges of at most ``slow_over`` blocks at once and stalls on wider ones."""
    calls: list[tuple[int, int]] = []

    async def get_logs(params: dict[str, Any]) -> list[dict[str, Any]]:
        start, end = int(params["fromBlock"]), int(params["toBlock"])
        calls.append((start, end))
        if end - start + 1 > slow_over:
            await asyncio.sleep(1)
        return [{"blockNumber": n} for n in range(start, end + 1)]

    fake = SimpleNamespace(name="fake", w3=SimpleNamespace(eth=SimpleNamespace(get_logs=get_logs)))
    return cast(ChainClient, fake), calls


async def test_a_range_that_times_out_is_halved() -> None:
    client, calls = _client(slow_over=3)
    logs = await fetch_raw_logs(client, [ADDRESS], from_block=1, to_block=10, max_range=8, call_timeout=0.05)
    assert [entry["blockNumber"] for entry in logs] == list(range(1, 11))
    assert calls[:3] == [(1, 8), (1, 4), (1, 2)]  # 8 and 4 blocks stalled: halved until 2 answered in time


async def test_one_block_over_the_timeout_raises() -> None:
    client, _ = _client(slow_over=0)
    with pytest.raises(LogQueryError, match="took over"):
        await fetch_raw_logs(client, [ADDRESS], from_block=1, to_block=4, max_range=4, call_timeout=0.05)


async def test_a_rate_limit_is_no_reason_to_halve_the_range() -> None:
    """A provider's "rate limit exceeded" was taken for "range too wide": the range was halved down to one block
    (a call each, hammering the provider) before the error came out."""
    calls: list[tuple[int, int]] = []

    async def get_logs(params: dict[str, Any]) -> list[dict[str, Any]]:
        calls.append((int(params["fromBlock"]), int(params["toBlock"])))
        raise ValueError({"code": -32005, "message": "rate limit exceeded"})

    client = cast(ChainClient, SimpleNamespace(name="fake", w3=SimpleNamespace(eth=SimpleNamespace(get_logs=get_logs))))
    with pytest.raises(LogQueryError, match="rate limit"):
        await fetch_raw_logs(client, [ADDRESS], from_block=1, to_block=8, max_range=8, call_timeout=1.0)
    assert calls == [(1, 8)]
