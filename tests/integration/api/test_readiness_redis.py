"""``/readyz``'s Redis check on a real Redis: probes go through the platform's kept client, so many probes, one after
another or at once, open at most its pool's connections (counted by the server: ``total_connections_received``);
each probe opened a connection of its own before."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

import pytest
import redis.asyncio
import redis.exceptions

from api.bootstrap import READINESS_REDIS_CONNECTIONS, Platform
from api.routers.health import _redis
from risk.redis_clients import async_redis
from risk.shared_state import SharedStateHealth

pytestmark = pytest.mark.integration


async def _opened(observer: redis.asyncio.Redis) -> int:
    return int((await observer.info("stats"))["total_connections_received"])


async def test_readiness_probes_reuse_the_platforms_redis_connections(redis_url: str) -> None:
    observer = redis.asyncio.Redis.from_url(redis_url)
    client = async_redis(redis_url, max_connections=READINESS_REDIS_CONNECTIONS)
    platform = cast(Platform, SimpleNamespace(readiness_redis=client, shared_state=()))
    try:
        before = await _opened(observer)
        assert [await _redis(platform) for _ in range(30)] == ["ok"] * 30
        assert await asyncio.gather(*(_redis(platform) for _ in range(10))) == ["ok"] * 10
        assert await _opened(observer) - before <= READINESS_REDIS_CONNECTIONS
    finally:
        await client.aclose()
        await observer.aclose()
    unconfigured = cast(Platform, SimpleNamespace(readiness_redis=None, shared_state=()))
    assert await _redis(unconfigured) == "not configured"


async def test_a_redis_that_answers_pings_but_refuses_writes_is_degraded(redis_url: str) -> None:
    """At its memory limit with ``noeviction`` Redis still answers PING but refuses every counter's write, so the
    velocity limits, breakers and rate limits fall back on each process's own: readiness says so."""
    admin = redis.asyncio.Redis.from_url(redis_url)
    client = async_redis(redis_url, max_connections=READINESS_REDIS_CONNECTIONS)
    platform = cast(Platform, SimpleNamespace(readiness_redis=client, shared_state=()))
    policy = str((await admin.config_get("maxmemory-policy"))["maxmemory-policy"])
    try:
        assert await _redis(platform) == "ok"
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.config_set("maxmemory", "1")
        assert await client.ping()
        assert await _redis(platform) == "degraded"
    finally:
        await admin.config_set("maxmemory", "0")
        await admin.config_set("maxmemory-policy", policy)
        assert await _redis(platform) == "ok"
        await client.aclose()
        await admin.aclose()


async def test_state_served_locally_is_degraded_until_the_shared_store_is_tried_again(redis_url: str) -> None:
    """A Redis error the velocity store (or a breaker, a rate limiter) met makes the process serve from its own
    state for the retry pause: readiness says ``degraded`` meanwhile, though the probe's own write went through."""
    now = [0.0]
    velocity = SharedStateHealth("velocity limits", 5.0, lambda: now[0])
    client = async_redis(redis_url, max_connections=READINESS_REDIS_CONNECTIONS)
    platform = cast(Platform, SimpleNamespace(readiness_redis=client, shared_state=(velocity,)))
    try:
        assert await _redis(platform) == "ok"
        velocity.failed(redis.exceptions.ResponseError("NOSCRIPT No matching script"))
        assert await _redis(platform) == "degraded"
        now[0] = 5.0  # the next call tries Redis again
        assert await _redis(platform) == "ok"
    finally:
        await client.aclose()
