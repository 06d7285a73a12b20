"""``index_to_head`` on a chain whose RPC serves no block up to the head it gave (a balancer in front of a node and
one behind it, on real anvils) stops with ``CatchUpStalled`` rather than poll for ever; with nothing to index it
returns at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from eth_utils.address import to_checksum_address

from aggregator.indexer import CatchUpStalled, index_to_head
from chain.client import ChainClient
from chain.config import ChainConfig
from chain.deployment import DeployedContract, DeploymentRecord
from chain.devnet import LOOPBACK, Devnet, free_port
from store.db import Database
from tests.integration.chain.support import fresh_anvil, node_behind

pytestmark = pytest.mark.integration

CHAIN_ID = 31337


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
    db.migrate()
    yield db
    db.dispose()


def _record() -> DeploymentRecord:
    """A record whose contracts were never deployed: their logs are none, the catch-up only moves its checkpoint."""
    contracts = {
        key: DeployedContract(artifact=key, address=to_checksum_address(f"0x{index:040x}"), tx_hash="0x", block=0)
        for index, key in enumerate(("CreditAggregator", "CollateralManager"), start=1)
    }
    return DeploymentRecord(chain_name="ethereum-local", chain_id=CHAIN_ID, profile="devnet", contracts=contracts)


@asynccontextmanager
async def balancer(head_from: str, rest_from: str) -> AsyncIterator[str]:
    """An RPC balancer on a free loopback port whose backends differ: ``eth_blockNumber`` goes to ``head_from``,
    every other call to ``rest_from`` (a node behind it)."""
    port = free_port()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        method = (await request.json()).get("method")
        async with aiohttp.ClientSession() as session:
            target = head_from if method == "eth_blockNumber" else rest_from
            async with session.post(target, data=body, headers={"Content-Type": "application/json"}) as answer:
                return web.Response(body=await answer.read(), content_type="application/json")

    app = web.Application()
    app.router.add_post("/", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        await runner.cleanup()


def _config(url: str) -> ChainConfig:
    return ChainConfig(name="ethereum-local", chain_id=CHAIN_ID, rpc_urls=[url], confirmations=1)


@pytest.fixture
def anvil() -> Iterator[Devnet]:
    with fresh_anvil() as devnet:
        yield devnet


async def test_a_node_behind_the_head_it_gave_stops_the_catch_up_with_a_typed_error(
    anvil: Devnet, database: Database
) -> None:
    """The head (block 5) came from the node ahead, the blocks from the one behind (at block 2): every poll found no
    block 5 to read up to, and index_to_head polled again at once, for ever (a benchmark or a test hung, hammering
    the node). Now a catch-up that reads nothing further for ``stalled_after`` seconds raises CatchUpStalled."""
    client = await ChainClient(_config(anvil.rpc_url)).connect()
    try:
        await client.rpc("anvil_mine", "0x2")
        async with node_behind(anvil) as lagging:
            await client.rpc("anvil_mine", "0x3")
            assert await client.head() == 5
            assert await lagging.head() == 2
            async with balancer(anvil.rpc_url, lagging.config.rpc_urls[0]) as url:
                started = time.monotonic()
                with pytest.raises(CatchUpStalled) as caught:
                    await asyncio.wait_for(
                        index_to_head(_config(url), _record(), database, 0, reader="lagging", stalled_after=1.0), 60
                    )
                assert time.monotonic() - started < 30
    finally:
        await client.close()
    assert "to block 5 read nothing past block -1 for 1.0 s" in str(caught.value)


async def test_nothing_to_index_returns_at_once(anvil: Devnet, database: Database) -> None:
    """From a block past the head there is nothing to read: the checkpoint never appeared, and index_to_head polled
    for ever."""
    await asyncio.wait_for(index_to_head(_config(anvil.rpc_url), _record(), database, 1, reader="past"), 30)
