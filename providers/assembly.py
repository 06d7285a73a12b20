"""The platform's providers, assembled at start-up (``build_providers``): the HTTP lenders of the settings, a pool per
chain and asset of the deployment records and the registrations stored through the API, in one ``ProviderRegistry``
whose breakers and rate limits are shared through Redis when there is one (each process's own while it does not
answer, reported by ``shared_state``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from providers.base import AdapterContext, ProviderRegistration
from providers.models import Capabilities
from providers.policy import ResiliencePolicy
from providers.registry import PluginLoader, ProviderRegistry
from providers.resilience import (
    BreakerStore,
    MemoryBreakerStore,
    MemoryRateLimiter,
    RateLimiter,
    RedisBreakerStore,
    RedisBuckets,
    RedisRateLimiter,
)
from providers.secrets import SecretBox
from providers.shared_state import DegradableBreakerStore, DegradableRateLimiter
from providers.webhooks import MemoryRefusalLimiter, RedisRefusalLimiter
from risk.redis_clients import async_redis
from risk.shared_state import SharedStateHealth

if TYPE_CHECKING:
    import httpx
    import redis.asyncio

    from aggregator.platform import ChainRuntime
    from api.settings import Settings
    from chain.deployment import DeploymentRecord
    from providers.destinations import DestinationGuard
    from store.db import Database


def limiters(
    redis_client: redis.asyncio.Redis | None, health: SharedStateHealth
) -> Callable[[ResiliencePolicy], RateLimiter]:
    """``health`` is one per process: Redis is up or down for every provider's limiter."""
    if redis_client is None:
        return lambda policy: MemoryRateLimiter(policy.rate_per_second, policy.burst)
    buckets = RedisBuckets(redis_client)  # one per process: a request's lender calls take their tokens together
    return lambda policy: DegradableRateLimiter(
        RedisRateLimiter(redis_client, policy.rate_per_second, policy.burst, buckets),
        MemoryRateLimiter(policy.rate_per_second, policy.burst),
        health,
    )


def policy_for(settings: Settings, provider_id: str) -> ResiliencePolicy:
    """The provider's own policy from the settings, else the default, with the fan-out deadline as quote budget."""
    base = settings.provider_policies.get(provider_id, settings.provider_resilience)
    if "quote_budget_seconds" in base.model_fields_set:
        return base
    return base.model_copy(update={"quote_budget_seconds": settings.fanout_deadline_seconds})


async def build_providers(
    settings: Settings,
    chains: Mapping[str, ChainRuntime],
    database: Database,
    http: httpx.AsyncClient,
    redis_url: str | None,
    *,
    spread_for_grade: Callable[[int], int] | None = None,
    plugins: PluginLoader | None = None,
    destinations: DestinationGuard | None = None,
    tokens: Mapping[str, Mapping[str, str]] | None = None,
) -> ProviderRegistry:
    """Every provider of the platform, resilience-wrapped: the configured HTTP lenders, a pool per chain and asset
    in the deployment records, and the registrations persisted through the API. With ``redis_url``, breaker state
    and rate limits are shared by every process. ``tokens``: each chain's listed token address by asset symbol (a
    pool registered through the API must lend its asset's)."""
    if spread_for_grade is None:
        from aggregator.risk_gate import spread_for_grade as default_spread

        spread_for_grade = default_spread
    store: BreakerStore = MemoryBreakerStore()
    shared_state = SharedStateHealth("provider breaker state"), SharedStateHealth("provider rate limits")
    if redis_url:  # shared while Redis answers, this process's own state while it does not
        shared = RedisBreakerStore.from_url(redis_url)
        store = DegradableBreakerStore(shared, MemoryBreakerStore(), shared_state[0])
    limiter_client = async_redis(redis_url) if redis_url else None
    registry = ProviderRegistry(
        AdapterContext(
            http,
            {name: runtime.w3 for name, runtime in chains.items()},
            spread_for_grade,
            destinations,
            https_only=settings.environment == "production",
            creditor_required=settings.environment == "production",
            tokens=tokens,
            aggregators={
                name: runtime.record.address("CreditAggregator")
                for name, runtime in chains.items()
                if "CreditAggregator" in runtime.record.contracts
            },
        ),
        plugins or PluginLoader(),
        store,
        limiters(limiter_client, shared_state[1]),
        policy_for(settings, ""),
        database,
        MemoryRefusalLimiter() if limiter_client is None else RedisRefusalLimiter(limiter_client),
        # the key store (issue 20 part B) will hold this key; until then it is derived from the master key
        SecretBox.from_master_key(bytes.fromhex(settings.pii_master_key)),
    )
    if redis_url:
        registry.shared_state = shared_state
    if limiter_client is not None:
        registry.on_close.append(limiter_client.aclose)
    for lender in settings.http_lenders:
        config = {"base_url": lender.base_url, "secret": lender.secret, "timeout_seconds": lender.timeout_seconds}
        registration = ProviderRegistration(
            lender.provider_id, "http", config, Capabilities(assets=frozenset(lender.assets)), lender.creditor
        )
        await registry.add(registration, policy_for(settings, lender.provider_id), source="settings")
    for provider_id, pool in deployed_pools({name: runtime.record for name, runtime in chains.items()}).items():
        registration = ProviderRegistration(provider_id, "pool", pool)
        await registry.add(registration, policy_for(settings, provider_id), source="deployment")
    await registry.load_persisted()
    return registry


def deployed_pools(records: Mapping[str, DeploymentRecord]) -> dict[str, dict[str, str]]:
    """A pool provider (its id → its configuration) per chain and asset whose pool the deployment records hold."""
    from contracts.deploy import POOL_ASSETS, pool_key

    return {
        f"pool:{name}:{asset}": {"chain": name, "asset": asset, "address": record.address(pool_key(asset))}
        for name, record in records.items()
        for asset in POOL_ASSETS
        if pool_key(asset) in record.contracts
    }


def provider_ids(
    settings: Settings, records: Mapping[str, DeploymentRecord], database: Database
) -> tuple[frozenset[str], frozenset[str]]:
    """The ids of every provider ``build_providers`` assembles from these settings, records and stored registrations,
    and of those among them deregistered (kept to serve their loans) — read without building any: for what needs
    to know the providers without the platform (``creditmesh keys issue``)."""
    from store.providers import ProviderRepository

    with database.unit_of_work() as uow:
        stored = ProviderRepository(uow.session).registrations(deregistered=True)
    configured = {lender.provider_id for lender in settings.http_lenders} | set(deployed_pools(records))
    known = configured | {row.provider_id for row in stored}
    return frozenset(known), frozenset(row.provider_id for row in stored if not row.enabled)
