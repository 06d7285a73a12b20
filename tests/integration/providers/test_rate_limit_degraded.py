"""Provider rate limits while Redis is down (issue 18, degrade don't fail): a real Redis of the test's own, stopped
and started again — calls go on under this process's own bucket, the limit holding per process, logged; the bucket
is shared across processes again once Redis answers."""

from __future__ import annotations

import logging
import uuid

import pytest
from redis.asyncio import Redis

from providers._exceptions import RateLimited
from providers.resilience import MemoryRateLimiter, RedisRateLimiter
from providers.shared_state import DegradableRateLimiter
from risk.shared_state import REDIS_TIMEOUTS, SharedStateHealth
from tests.support.clock import ManualClock
from tests.support.services import RestartableRedis

pytestmark = pytest.mark.integration

RATE, BURST = 0.01, 2  # two calls, then none for 100 s: nothing refills during the test


async def test_calls_go_on_under_local_buckets_while_redis_is_down(
    restartable_redis: RestartableRedis, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    clients = [Redis.from_url(restartable_redis.url, **REDIS_TIMEOUTS) for _ in range(2)]
    healths = [SharedStateHealth("provider rate limits", 5.0, clock) for _ in clients]
    one, two = (
        DegradableRateLimiter(RedisRateLimiter(c, RATE, BURST), MemoryRateLimiter(RATE, BURST), h)
        for c, h in zip(clients, healths, strict=True)
    )
    lender = f"lender-{uuid.uuid4().hex[:8]}"
    try:
        await one.acquire(lender, 0.1)
        await two.acquire(lender, 0.1)
        with pytest.raises(RateLimited):  # one bucket for both processes
            await one.acquire(lender, 0.1)

        restartable_redis.stop()
        with caplog.at_level(logging.WARNING, logger="risk.shared_state"):
            await one.acquire(lender, 0.1)  # served from this process's own bucket
        assert healths[0].degraded
        assert "Redis unavailable" in caplog.text
        await one.acquire(lender, 0.1)
        with pytest.raises(RateLimited):  # the local bucket holds its limit
            await one.acquire(lender, 0.1)

        restartable_redis.start()  # an empty Redis: a full shared bucket again, used once the retry time has passed
        clock.now = 6.0
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="risk.shared_state"):
            await one.acquire(lender, 0.1)
        assert not healths[0].degraded
        assert "Redis is back" in caplog.text
        await two.acquire(lender, 0.1)
        with pytest.raises(RateLimited):  # shared again
            await two.acquire(lender, 0.1)
    finally:
        for client in clients:
            await client.aclose()
