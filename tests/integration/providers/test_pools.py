"""On-chain pools registered through the registry: several at once, of different assets on different chains (the
devnet's USDC pool on one chain, a WETH pool deployed here on another), each quoting from its own state; a pool
registration whose address is not a pool is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from web3 import AsyncWeb3
from web3.providers.async_base import AsyncBaseProvider
from web3.providers.rpc import AsyncHTTPProvider

from api.auth import Role, ensure_key
from chain.artifacts import load_artifact
from contracts.deploy import RateModel
from providers._exceptions import InvalidRegistration, PoolAlreadyServed
from providers.base import AdapterContext, ProviderRegistration
from providers.models import Decline
from providers.policy import ResiliencePolicy
from providers.registry import PluginLoader, ProviderRegistry
from providers.resilience import MemoryBreakerStore, MemoryRateLimiter
from store.db import Database
from store.providers import ProviderRepository
from tests.integration.providers.support import providers_api
from tests.support.devnet import DeployedChain
from tests.unit.providers.fakes import REQUEST

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

SPREAD_BPS = 300
ADMIN = "cm_admin_pools"


def _deploy_weth_pool(chain: DeployedChain, liquidity: int) -> str:
    """A second LendingPool, of WETH, lending for at most 90 days, funded with ``liquidity`` by a devnet account and
    registered with the chain's CreditAggregator (by the Timelock)."""
    w3 = chain.w3
    owner = w3.eth.accounts[0]
    artifact = load_artifact("LendingPool")
    weth = chain.record.address("WETH")
    model = RateModel()
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx = factory.constructor(
        weth,
        "creditmesh WETH pool",
        "cmWETH",
        owner,
        chain.record.address("CreditAggregator"),
        model.base_bps,
        model.slope1_bps,
        model.slope2_bps,
        model.optimal_utilization_bps,
        1_000,
        0,
    ).transact({"from": owner})
    pool = str(w3.eth.wait_for_transaction_receipt(tx)["contractAddress"])
    vault = w3.eth.contract(address=pool, abi=artifact.abi)  # type: ignore[call-overload]
    w3.eth.wait_for_transaction_receipt(vault.functions.setMaxTerm(90 * 86_400).transact({"from": owner}))
    token = chain.contract("WETH")
    w3.eth.wait_for_transaction_receipt(token.functions.mint(owner, liquidity).transact({"from": owner}))
    w3.eth.wait_for_transaction_receipt(token.functions.approve(pool, liquidity).transact({"from": owner}))
    w3.eth.wait_for_transaction_receipt(vault.functions.deposit(liquidity, owner).transact({"from": owner}))
    chain.register_pool(pool)
    return pool


@pytest.fixture
def polygon(devnet_chains: dict[str, DeployedChain]) -> Iterator[DeployedChain]:
    chain = devnet_chains["polygon-local"]
    with chain.snapshot():
        yield chain


@pytest.fixture
async def registry(devnet_chains: dict[str, DeployedChain], tmp_path: Path) -> AsyncIterator[ProviderRegistry]:
    database = Database(f"sqlite:///{tmp_path / 'pools.db'}")
    database.migrate()
    web3: dict[str, AsyncWeb3[AsyncBaseProvider]] = {
        name: AsyncWeb3(AsyncHTTPProvider(chain.devnet.rpc_url)) for name, chain in devnet_chains.items()
    }
    async with httpx.AsyncClient() as http:
        yield ProviderRegistry(
            AdapterContext(http, web3, lambda grade: SPREAD_BPS),
            PluginLoader(),
            MemoryBreakerStore(),
            lambda p: MemoryRateLimiter(p.rate_per_second, p.burst),
            ResiliencePolicy(),
            database,
        )
    for w3 in web3.values():
        await w3.provider.disconnect()
    database.dispose()


async def test_pools_of_different_assets_on_different_chains_quote_from_their_own_state(
    registry: ProviderRegistry, devnet_chains: dict[str, DeployedChain], polygon: DeployedChain
) -> None:
    ethereum = devnet_chains["ethereum-local"]
    weth_pool = _deploy_weth_pool(polygon, liquidity=5 * 10**18)
    usdc = ProviderRegistration(
        "pool-eth-usdc",
        "pool",
        {"chain": "ethereum-local", "asset": "USDC", "address": ethereum.record.address("LendingPool:USDC")},
    )
    weth = ProviderRegistration(
        "pool-poly-weth", "pool", {"chain": "polygon-local", "asset": "WETH", "address": weth_pool}
    )
    await registry.register(usdc)
    await registry.register(weth)

    usdc_answer = await registry.get_provider("pool-eth-usdc").quote(REQUEST)
    weth_request = replace(REQUEST, asset="WETH", asset_decimals=18, principal=10**18, chains=("polygon-local",))
    weth_answer = await registry.get_provider("pool-poly-weth").quote(weth_request)
    too_big = replace(weth_request, principal=6 * 10**18)
    assert isinstance(await registry.get_provider("pool-poly-weth").quote(too_big), Decline)
    too_long = await registry.get_provider("pool-poly-weth").quote(replace(weth_request, term_days=91))
    assert isinstance(too_long, Decline)
    assert "maximum of 90 days" in too_long.reason

    assert not isinstance(usdc_answer, Decline)
    assert not isinstance(weth_answer, Decline)
    usdc_pool = ethereum.contract("LendingPool:USDC")
    weth_contract = polygon.w3.eth.contract(address=weth_pool, abi=load_artifact("LendingPool").abi)  # type: ignore[call-overload]
    assert usdc_answer[0].rate_bps == usdc_pool.functions.modelRateBps(REQUEST.principal).call() + SPREAD_BPS
    assert weth_answer[0].rate_bps == weth_contract.functions.modelRateBps(10**18).call() + SPREAD_BPS
    assert (usdc_answer[0].chain, usdc_answer[0].asset) == ("ethereum-local", "USDC")
    assert (weth_answer[0].chain, weth_answer[0].asset, weth_answer[0].pool_address) == (
        "polygon-local",
        "WETH",
        weth_pool,
    )
    assert registry.get_provider("pool-poly-weth").capabilities().assets == frozenset({"WETH"})


async def test_an_address_that_is_not_a_pool_is_refused(
    registry: ProviderRegistry, devnet_chains: dict[str, DeployedChain]
) -> None:
    not_a_pool = devnet_chains["arbitrum-local"].record.address("USDC")
    with pytest.raises(InvalidRegistration, match="the pool does not answer its views"):
        await registry.register(
            ProviderRegistration(
                "pool-bogus", "pool", {"chain": "arbitrum-local", "asset": "USDC", "address": not_a_pool}
            )
        )
    with pytest.raises(InvalidRegistration, match="unknown chain 'mainnet'"):
        await registry.register(
            ProviderRegistration("pool-far", "pool", {"chain": "mainnet", "asset": "USDC", "address": not_a_pool})
        )
    assert "pool-bogus" not in registry


async def test_a_pool_registered_for_an_asset_it_does_not_lend_is_refused_naming_both(
    registry: ProviderRegistry, polygon: DeployedChain, tmp_path: Path
) -> None:
    """The WETH pool registered as the USDC pool was accepted: it answered its views, and its offers were quoted
    as USDC principals (6 decimals) to be funded in WETH. The pool's ``asset()`` is now read at registration and
    compared with the token listed for the asset on the pool's chain: a 422 naming both."""
    weth_pool = _deploy_weth_pool(polygon, liquidity=10**18)
    usdc, weth = polygon.record.address("USDC"), polygon.record.address("WETH")
    registry.context = replace(registry.context, tokens={"polygon-local": {"USDC": usdc, "WETH": weth}})
    database = registry._database
    assert database is not None
    ensure_key(database, ADMIN, Role.ADMIN, None, "test admin")
    transport = httpx.ASGITransport(app=providers_api(registry, database))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as api:
        body = {"provider_id": "pool-mislabelled", "kind": "pool", "config": {"chain": "polygon-local"}}
        config = {"chain": "polygon-local", "address": weth_pool}
        refused = await api.post(
            "/v1/providers", json=body | {"config": config | {"asset": "USDC"}}, headers={"X-API-Key": ADMIN}
        )
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"]
        where = f"pool-mislabelled: the pool at {weth_pool} on polygon-local"
        assert detail == f"{where} lends the token {weth}, not USDC ({usdc} there)"
        assert "pool-mislabelled" not in registry
        unlisted = await api.post(
            "/v1/providers", json=body | {"config": config | {"asset": "DAI"}}, headers={"X-API-Key": ADMIN}
        )
        assert unlisted.status_code == 422, unlisted.text
        assert "DAI is not listed on polygon-local" in unlisted.json()["detail"]
        created = await api.post(
            "/v1/providers", json=body | {"config": config | {"asset": "WETH"}}, headers={"X-API-Key": ADMIN}
        )
        assert created.status_code == 201, created.text


async def test_a_pool_registered_without_an_hmac_secret_cannot_set_a_loan_events_webhook(
    registry: ProviderRegistry, devnet_chains: dict[str, DeployedChain]
) -> None:
    """A pool needs no secret to quote, and registering one with a ``webhook_url`` and no secret is refused; but its
    own key could then set a loan-events webhook URL anyway, which the relay could never sign for: each of its
    events held at the head of the relay's queue, and enough of them stopped every other recipient's. The URL is
    now refused (422) as the registration refuses it; removing it stays allowed."""
    database = registry._database
    assert database is not None
    ensure_key(database, ADMIN, Role.ADMIN, None, "test admin")
    pool = devnet_chains["ethereum-local"].record.address("LendingPool:USDC")
    transport = httpx.ASGITransport(app=providers_api(registry, database))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as api:
        config = {"chain": "ethereum-local", "asset": "USDC", "address": str(pool)}
        body = {"provider_id": "pool-quiet", "kind": "pool", "config": config}
        created = await api.post("/v1/providers", json=body, headers={"X-API-Key": ADMIN})
        assert created.status_code == 201, created.text
        own = {"X-API-Key": created.json()["api_key"]}
        path = "/v1/providers/pool-quiet/loan-events-webhook"
        refused = await api.put(path, json={"url": "https://pool-quiet.example/events"}, headers=own)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"] == (
            "pool-quiet: a webhook_url needs the HMAC secret its events are signed with; its registration has none"
        )
        assert (await api.put(path, json={"url": None}, headers=own)).status_code == 200
    with database.unit_of_work() as uow:
        stored = ProviderRepository(uow.session).registration("pool-quiet")
        assert stored is not None
        assert stored.webhook_url is None


async def test_a_pool_is_registered_without_a_legal_name_its_notices_name_its_contract(
    registry: ProviderRegistry, devnet_chains: dict[str, DeployedChain]
) -> None:
    """A LendingPool contract is no legal person: a pool registered with a legal name is refused (422), and one
    registered without is listed with none; its notices name its contract and chain (``lending_pool``)."""
    database = registry._database
    assert database is not None
    ensure_key(database, ADMIN, Role.ADMIN, None, "test admin")
    pool = devnet_chains["ethereum-local"].record.address("LendingPool:USDC")
    transport = httpx.ASGITransport(app=providers_api(registry, database))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as api:
        config = {"chain": "ethereum-local", "asset": "USDC", "address": str(pool)}
        body = {"provider_id": "pool-named", "kind": "pool", "config": config}
        named = body | {"legal_name": "Pool Operator LLC", "address": "6 Pool Lane"}
        refused = await api.post("/v1/providers", json=named, headers={"X-API-Key": ADMIN})
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"].startswith("pool-named: a lending pool is no legal person")
        created = await api.post("/v1/providers", json=body, headers={"X-API-Key": ADMIN})
        assert created.status_code == 201, created.text
    provider = registry.get_provider("pool-named")
    assert provider.creditor() is None
    assert provider.lending_pool() == ("ethereum-local", str(pool))


async def test_a_pool_another_process_registered_is_refused_before_this_one_has_read_it(
    registry: ProviderRegistry, devnet_chains: dict[str, DeployedChain]
) -> None:
    """Two API processes on one database: the second, which has not polled the registrations yet, is refused the pool
    the first registered under another id (the stored enabled registrations are read under the version row's
    lock); once the first is deregistered, it may."""
    other = ProviderRegistry(
        registry.context,
        PluginLoader(),
        MemoryBreakerStore(),
        lambda p: MemoryRateLimiter(p.rate_per_second, p.burst),
        ResiliencePolicy(),
        registry._database,
    )
    address = devnet_chains["ethereum-local"].record.address("LendingPool:USDC")
    config = {"chain": "ethereum-local", "asset": "USDC", "address": address}
    await registry.register(ProviderRegistration("pool-here", "pool", config))
    with pytest.raises(PoolAlreadyServed, match="is already served by provider 'pool-here' \\(deregister it first\\)"):
        await other.register(ProviderRegistration("pool-there", "pool", config))
    assert "pool-there" not in other
    await registry.deregister("pool-here")
    await other.register(ProviderRegistration("pool-there", "pool", config))
    assert "pool-there" in other
