"""The event reader against a node that refuses ``eth_getLogs`` the way RPC providers do (a JSON-RPC proxy in front
of anvil answers chosen calls with a provider's error): a rate limit is asked again after a pause over the same
range — not taken for "range too wide", which halved the range down to one block and then failed — and a single
block refused for all the watched addresses at once is read one address at a time instead of stopping the chain's
reading at it for ever."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from chain.client import ChainClient
from chain.devnet import Devnet
from chain.errors import RpcRateLimited
from chain.events import RATE_LIMIT_TRIES, EventReader, WatchedContract
from chain.transactions import Call
from store.chain import SqlChainStore
from tests.integration.chain.support import deploy_token, holder, manager
from tests.support.served import posts_served

pytestmark = pytest.mark.integration

Refusal = Callable[[dict[str, Any]], dict[str, Any] | None]
RATE_LIMITED = {"code": -32005, "message": "Rate limit exceeded: too many requests per second"}
TOO_HEAVY = [
    {"code": -32005, "message": "query returned more than 10000 results"},  # Infura's wording
    {"code": -32602, "message": "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block "
     "range and no limit on the response size"},  # Alchemy's
]  # fmt: skip


@asynccontextmanager
async def refusing_proxy(upstream: str, refuse: Refusal) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A JSON-RPC node forwarding to ``upstream``, except the ``eth_getLogs`` calls ``refuse`` answers with an error
    (it returns the error, or None to forward the call); yields its URL and every ``eth_getLogs`` filter asked."""
    asked: list[dict[str, Any]] = []
    session = aiohttp.ClientSession()

    async def answer(request: web.Request) -> web.Response:
        call = await request.json()
        if isinstance(call, dict) and call.get("method") == "eth_getLogs":
            asked.append(call["params"][0])
            error = refuse(call["params"][0])
            if error is not None:
                return web.json_response({"jsonrpc": "2.0", "id": call["id"], "error": error})
        async with session.post(upstream, json=call) as forwarded:
            return web.json_response(await forwarded.json())

    try:
        async with posts_served(answer) as url:
            yield f"{url}/", asked
    finally:
        await session.close()


async def _minted(client: ChainClient, store: SqlChainStore, tokens: int, mints: int) -> list[WatchedContract]:
    """``tokens`` tokens, each minted 1..``mints`` (one block each, automine)."""
    watched = []
    async with manager(client, store) as txs:
        for index in range(tokens):
            token = await deploy_token(txs, key=f"token-{index}")
            for value in range(1, mints + 1):
                await txs.submit_and_wait(f"mint:{index}:{value}", Call.function(token, "mint", holder(0), value))
            watched.append(WatchedContract(f"token-{index}", token.address, "MockERC20"))
    return watched


@asynccontextmanager
async def _reading_through(anvil: Devnet, refuse: Refusal) -> AsyncIterator[tuple[ChainClient, list[dict[str, Any]]]]:
    async with refusing_proxy(anvil.rpc_url, refuse) as (url, asked):
        client = ChainClient(anvil.config().model_copy(update={"rpc_urls": [url]}), timeout=5.0)
        await client.connect()
        try:
            yield client, asked
        finally:
            await client.close()


def _span(query: dict[str, Any]) -> tuple[int, int]:
    return int(query["fromBlock"], 16), int(query["toBlock"], 16)


async def test_a_rate_limit_is_asked_again_after_a_pause_over_the_same_range(
    anvil: Devnet, client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    (token,) = await _minted(client, sqlite_store, tokens=1, mints=4)
    refusals = iter([RATE_LIMITED, RATE_LIMITED])
    async with _reading_through(anvil, lambda _: next(refusals, None)) as (proxied, asked):
        reader = EventReader(
            proxied, sqlite_store, [token], confirmations=1, max_range=4, initial_range=4, rate_limit_pause=0.01
        )
        assert await reader.poll() == 4  # the mints' Transfers
    spans = [_span(query) for query in asked]
    assert spans[:3] == [(0, 3)] * 3, f"the range was not narrowed for a rate limit: {spans}"


async def test_a_rate_limit_that_lasts_fails_the_poll_as_an_outage_and_keeps_the_range(
    anvil: Devnet, client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    (token,) = await _minted(client, sqlite_store, tokens=1, mints=2)
    limited = True
    async with _reading_through(anvil, lambda _: RATE_LIMITED if limited else None) as (proxied, asked):
        reader = EventReader(
            proxied, sqlite_store, [token], confirmations=1, max_range=4, initial_range=4, rate_limit_pause=0.01
        )
        with pytest.raises(RpcRateLimited, match="rate limit"):
            await reader.poll()
        assert len(asked) == RATE_LIMIT_TRIES
        assert len({_span(query) for query in asked}) == 1
        limited = False
        assert await reader.poll() > 0
        assert _span(asked[-1]) == _span(asked[0]), "the next poll reads the same range, not a narrowed one"


@pytest.mark.parametrize("too_heavy", TOO_HEAVY, ids=["more-than-results", "response-size"])
async def test_a_block_refused_for_all_addresses_at_once_is_read_one_address_at_a_time(
    anvil: Devnet, client: ChainClient, sqlite_store: SqlChainStore, too_heavy: dict[str, Any]
) -> None:
    first, second = await _minted(client, sqlite_store, tokens=2, mints=3)
    dense = await client.rpc("eth_blockNumber")
    dense_block = int(str(dense), 16)  # the second token's last mint: its block is "too dense" for both addresses

    def refuse(query: dict[str, Any]) -> dict[str, Any] | None:
        start, end = _span(query)
        return too_heavy if len(query["address"]) > 1 and start <= dense_block <= end else None

    async with _reading_through(anvil, refuse) as (proxied, asked):
        reader = EventReader(proxied, sqlite_store, [first, second], confirmations=1, initial_range=8)
        seen: list[tuple[str, int]] = []

        async def collect(batch: Any) -> None:
            seen.extend((event.contract, int(event.args["value"])) for event in batch.events)

        await reader.poll(collect)
    assert sorted(seen) == [(name, value) for name in ("token-0", "token-1") for value in (1, 2, 3)]
    alone = [query for query in asked if _span(query) == (dense_block, dense_block) and len(query["address"]) == 1]
    assert sorted(query["address"][0] for query in alone) == sorted([first.address, second.address])
