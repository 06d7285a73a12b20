"""Quote-time valuation on the CollateralManager's feeds (the package's own devnet): the feed's answer is the price,
a moved feed is seen once the cache's time to live has passed, a stale feed refuses the valuation with its reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from aggregator.assets import Asset
from aggregator.errors import PricesUnavailable
from aggregator.platform import ChainRuntime
from aggregator.valuation import FeedPricer
from chain.client import ChainClient
from chain.signers import Role, devnet_signer
from chain.transactions import TransactionManager
from store.chain import SqlChainStore
from store.db import Database
from tests.contracts.harness import DEPLOYER, Harness
from tests.support.devnet import DeployedChain

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
async def runtime(own_chain: DeployedChain, servicing_db: Database) -> AsyncIterator[ChainRuntime]:
    client = await ChainClient(own_chain.config).connect()
    relayer = TransactionManager(client, devnet_signer(Role.RELAYER), SqlChainStore(servicing_db.sessions))
    yield ChainRuntime(client, own_chain.record, relayer)
    await client.close()


def _assets(chain: DeployedChain) -> tuple[Asset, Asset]:
    usdc = Asset("USDC", 6, Decimal(0), {chain.name: chain.record.address("USDC")})
    weth = Asset("WETH", 18, Decimal(0), {chain.name: chain.record.address("WETH")})
    return usdc, weth


async def test_quotes_value_collateral_on_the_feeds(own_chain: DeployedChain, runtime: ChainRuntime) -> None:
    harness = Harness(own_chain)
    harness.set_weth_price(2_750.5)
    clock = [0.0]
    pricer = FeedPricer({own_chain.name: runtime}, ttl=5.0, clock=lambda: clock[0])
    usdc, weth = await pricer.priced([own_chain.name], *_assets(own_chain))
    assert (usdc.usd_price, weth.usd_price) == (Decimal(1), Decimal("2750.5"))

    harness.set_weth_price(1_000)
    assert (await pricer.priced([own_chain.name], *_assets(own_chain)))[1].usd_price == Decimal("2750.5")  # cached
    clock[0] = 4.5  # past REFRESH_AHEAD of the ttl: valued on the cached prices, which are read again meanwhile
    assert (await pricer.priced([own_chain.name], *_assets(own_chain)))[1].usd_price == Decimal("2750.5")
    for _ in range(100):  # the background read lands without the clock passing the ttl
        await asyncio.sleep(0.05)
        if (await pricer.priced([own_chain.name], *_assets(own_chain)))[1].usd_price == Decimal(1_000):
            break
    assert (await pricer.priced([own_chain.name], *_assets(own_chain)))[1].usd_price == Decimal(1_000)
    harness.set_weth_price(1_500)
    clock[0] = 10.0  # past the ttl: the request reads them itself
    assert (await pricer.priced([own_chain.name], *_assets(own_chain)))[1].usd_price == Decimal(1_500)

    now = harness.now()
    harness.send(harness.weth_feed.functions.setTimes(now - 7_200, now - 7_200), DEPLOYER)
    try:
        clock[0] = 20.0
        with pytest.raises(PricesUnavailable, match="stale price"):
            await pricer.priced([own_chain.name], *_assets(own_chain))
    finally:
        harness.send(harness.weth_feed.functions.setTimes(0, 0), DEPLOYER)
        harness.set_weth_price(3_000)
