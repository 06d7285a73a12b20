"""Provider breaker state while Redis is down (issue 18, degrade don't fail): a real Redis of the test's own, stopped
and started again, two processes' breakers on it — one breaker for both while Redis answers; while it is down each
process goes on with its own breaker (starting from the last state it saw, logged, reported degraded) instead of
failing or reading "closed" forever; once Redis answers (empty, as after a failover) the breaker is shared again."""

from __future__ import annotations

import logging
import uuid

import pytest

from providers._exceptions import CircuitOpen
from providers.policy import ResiliencePolicy
from providers.resilience import AsyncBreaker, MemoryBreakerStore, RedisBreakerStore
from providers.shared_state import DegradableBreakerStore
from risk.shared_state import SharedStateHealth
from tests.support.clock import ManualClock
from tests.support.services import RestartableRedis

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

POLICY = ResiliencePolicy(fail_max=2, reset_timeout_seconds=300)


async def _fail(breaker: AsyncBreaker) -> None:
    permit = await breaker.admit()
    await breaker.record(permit, failed=True)


async def _admitted(breaker: AsyncBreaker) -> bool:
    try:
        permit = await breaker.admit()
    except CircuitOpen:
        return False
    await breaker.record(permit, failed=False)
    return True


async def test_each_process_keeps_its_own_breaker_while_redis_is_down_and_shares_again_after(
    restartable_redis: RestartableRedis, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    healths = [SharedStateHealth("provider breaker state", 5.0, clock) for _ in range(2)]
    stores = [
        DegradableBreakerStore(RedisBreakerStore.from_url(restartable_redis.url), MemoryBreakerStore(), health)
        for health in healths
    ]
    lender = f"lender-{uuid.uuid4().hex[:8]}"
    one, two = [await AsyncBreaker(lender, POLICY, store).start() for store in stores]
    try:
        await _fail(one)
        await _fail(one)
        assert await one.state() == "open"
        assert not await _admitted(two), "one breaker for both processes while Redis answers"

        restartable_redis.stop()
        with caplog.at_level(logging.WARNING, logger="risk.shared_state"):
            assert not await _admitted(one), "process one's own breaker: open, as it last saw it"
            assert await _admitted(two), "process two never opened its own: it goes on calling"
        assert all(health.degraded for health in healths)
        assert caplog.text.count("provider breaker state: Redis unavailable") == 2, "logged once per process"
        await _fail(two)
        await _fail(two)
        assert not await _admitted(two), "two's local breaker opens on its own failures"
        assert (await two.snapshot()).state == "open"

        restartable_redis.start()  # empty: every breaker closed again, shared once the retry time has passed
        clock.now = 6.0
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="risk.shared_state"):
            assert await _admitted(one)
        assert "provider breaker state: Redis is back" in caplog.text
        assert not healths[0].degraded
        await _fail(one)
        await _fail(one)
        assert not await _admitted(two), "shared again: one's failures opened two's breaker"
        assert not healths[1].degraded
    finally:
        for store in stores:
            await store.aclose()
