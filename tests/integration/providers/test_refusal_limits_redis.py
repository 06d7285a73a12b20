"""Per-source limits on a real Redis: refused webhooks counted across two clients (two processes' view) with keys
that expire with their window; velocity's wallet claims expire too."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from providers.webhooks import RedisRefusalLimiter, RefusalLimits
from risk.velocity import RedisVelocityStore

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_webhook_refusals_are_shared_and_expire(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}"
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        limits = RefusalLimits(per_window=3, window_seconds=60)
        one, two = RedisRefusalLimiter(first, limits, prefix), RedisRefusalLimiter(second, limits, prefix)
        assert [await one.refused("198.51.100.7", 1_000.0), await two.refused("198.51.100.7", 1_001.0)] == [1, 2]
        assert await one.refused("198.51.100.7", 1_002.0) == limits.per_window
        assert await two.refused("198.51.100.7", 1_003.0) > limits.per_window, "the other process sees the limit"
        assert await two.refused("203.0.113.1", 1_003.0) == 1, "per source"
        assert await two.refused("198.51.100.7", 1_080.0) == 1, "a new window"
        keys = [key async for key in first.scan_iter(f"{prefix}:*")]
        assert keys
        ttls = [await first.ttl(key) for key in keys]
        assert all(0 < ttl <= 120 for ttl in ttls), "every key expires"
    finally:
        await first.aclose()
        await second.aclose()


async def test_wallet_claims_expire(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}"
    client = Redis.from_url(redis_url)
    try:
        store = RedisVelocityStore(client, prefix, claim_ttl_seconds=600)
        assert await store.claim_wallet("0x" + "ab" * 20, "alice") == 1
        await store.hit("borrower:alice", 1_000.0, 60)
        keys = [key async for key in client.scan_iter(f"{prefix}:*")]
        assert len(keys) == 2
        ttls = [await client.ttl(key) for key in keys]
        assert all(0 < ttl <= 600 for ttl in ttls)
    finally:
        await client.aclose()
