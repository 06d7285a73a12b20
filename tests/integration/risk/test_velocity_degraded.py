"""Velocity limits while Redis is down (issue 18, degrade don't fail): a real Redis of the test's own, stopped and
started again — requests go on counted locally, the limits hold per process meanwhile, it is logged, and the counts
are shared again once Redis answers."""

from __future__ import annotations

import logging

import pytest
from redis.asyncio import Redis

from risk.errors import VelocityLimitExceeded
from risk.shared_state import REDIS_TIMEOUTS, DegradableVelocityStore
from risk.velocity import RedisVelocityStore, VelocityLimits, check_velocity
from tests.support.clock import ManualClock
from tests.support.services import RestartableRedis

pytestmark = pytest.mark.integration

LIMITS = VelocityLimits(window_seconds=600, per_borrower=3, per_wallet=10, per_ip=10)


async def _request(store: DegradableVelocityStore, borrower: str, now: float) -> None:
    await check_velocity(store, LIMITS, borrower_id=borrower, wallet=None, ip=None, now=now)


async def test_limits_go_on_locally_while_redis_is_down_and_are_shared_again_after(
    restartable_redis: RestartableRedis, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    clients = [Redis.from_url(restartable_redis.url, **REDIS_TIMEOUTS) for _ in range(2)]
    one, two = (DegradableVelocityStore(RedisVelocityStore(c), retry_seconds=5.0, clock=clock) for c in clients)
    try:
        await _request(one, "b1", 1.0)  # shared: one request through each process, then a third …
        await _request(two, "b1", 2.0)
        await _request(one, "b1", 3.0)
        with pytest.raises(VelocityLimitExceeded):  # … and the limit holds across them
            await _request(two, "b1", 4.0)

        restartable_redis.stop()
        with caplog.at_level(logging.WARNING, logger="risk.shared_state"):
            await _request(two, "b2", 5.0)  # served, not failed
        assert two.health.degraded
        assert "Redis unavailable" in caplog.text
        # process one keeps its own two b1 requests locally: one more, then its local limit stops b1
        await _request(one, "b1", 6.0)
        with pytest.raises(VelocityLimitExceeded) as local:
            await _request(one, "b1", 7.0)
        assert local.value.count == 4
        await _request(two, "b2", 8.0)

        restartable_redis.start()  # an empty Redis, as after a failover; tried again only after retry_seconds
        clock.now = 4.0
        await _request(two, "b3", 9.0)
        assert two.health.degraded
        clock.now = 6.0
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="risk.shared_state"):
            await _request(two, "b3", 10.0)
            await _request(one, "b3", 11.0)
        assert not two.health.degraded
        assert not one.health.degraded
        assert "Redis is back" in caplog.text
        # shared again: b3's requests through both processes count together
        await _request(one, "b3", 12.0)
        with pytest.raises(VelocityLimitExceeded) as shared:
            await _request(two, "b3", 13.0)
        assert shared.value.count == 4
    finally:
        for client in clients:
            await client.aclose()
