"""``/readyz``'s Redis check on a real Redis: probes go through the platform's kept client, so many probes, one after
another or at once, open at most its pool's connections (counted by the server: ``total_connections_received``);
each probe opened a connection of its own before."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

import pytest
import redis.asyncio

from api.bootstrap import READINESS_REDIS_CONNECTIONS, Platform
from api.routers.health import _redis
from risk.redis_clients import async_redis

pytestmark = pytest.mark.integration


async def _opened(observer: redis.asyncio.Redis) -> int:
    return int((await observer.info("stats"))["total_connections_received"])


async def test_readiness_probes_reuse_the_platforms_redis_connections(redis_url: str) -> None:
    observer = redis.asyncio.Redis.from_url(redis_url)
    client = async_redis(redis_url, max_connections=READINESS_REDIS_CONNECTIONS)
    platform = cast(Platform, SimpleNamespace(readiness_redis=client))
    try:
        before = await _opened(observer)
        assert [await _redis(platform) for _ in range(30)] == ["ok"] * 30
        assert await asyncio.gather(*(_redis(platform) for _ in range(10))) == ["ok"] * 10
        assert await _opened(observer) - before <= READINESS_REDIS_CONNECTIONS
    finally:
        await client.aclose()
        await observer.aclose()
    unconfigured = cast(Platform, SimpleNamespace(readiness_redis=None))
    assert await _redis(unconfigured) == "not configured"
