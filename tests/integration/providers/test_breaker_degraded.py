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


async def test_a_trial_taken_while_redis_was_down_is_released_where_it_was_taken(
    restartable_redis: RestartableRedis,
) -> None:
    """The trial slot a half-open breaker took in this process's memory during an outage was released in Redis once
    Redis answered again: the memory kept it taken for good, and in the next outage the breaker stayed half-open,
    refusing every call ("every trial call is taken"), however long the lender had been healthy."""
    clock = ManualClock()
    health = SharedStateHealth("provider breaker state", 5.0, clock)
    local = MemoryBreakerStore()
    store = DegradableBreakerStore(RedisBreakerStore.from_url(restartable_redis.url), local, health)
    policy = ResiliencePolicy(fail_max=1, reset_timeout_seconds=10, half_open_max_calls=1)
    lender = f"lender-{uuid.uuid4().hex[:8]}"
    breaker = await AsyncBreaker(lender, policy, store, clock=clock).start()
    try:
        restartable_redis.stop()
        await _fail(breaker)  # opens in this process's memory
        clock.now += 11
        trial = await breaker.admit()
        assert local.trials(lender) == 1, "the trial slot is taken in memory"

        restartable_redis.start()  # Redis answers again while the trial call is on its way
        clock.now += 6
        await breaker.record(trial, failed=False)
        assert not health.degraded
        assert local.trials(lender) == 0, "released in memory, where it was taken"

        restartable_redis.stop()  # the next outage: the lender fails, the breaker opens in memory again
        clock.now += 6
        await _fail(breaker)
        clock.now += 11
        assert await _admitted(breaker), "a trial call again once the reset timeout has passed"
        assert await breaker.state() == "closed"
    finally:
        restartable_redis.stop()  # (running or not) and up again for the next test
        restartable_redis.start()
        await store.aclose()


def test_a_trial_slot_never_released_frees_itself_after_its_time() -> None:
    clock = ManualClock()
    store = MemoryBreakerStore(clock)
    assert store.take_trial("acme", 1, 30.0)
    assert not store.take_trial("acme", 1, 30.0), "one trial at a time"
    clock.now = 29.0
    assert store.trials("acme") == 1
    clock.now = 30.5
    assert store.trials("acme") == 0, "expired, as a Redis slot's key does"
    assert store.take_trial("acme", 1, 30.0)
    store.release_trial("acme")
    assert store.trials("acme") == 0


async def test_a_busy_breaker_lock_is_not_redis_down(restartable_redis: RestartableRedis) -> None:
    """Another process holding a breaker's Redis lock past the wait raises redis-py's ``LockError`` (a
    ``RedisError``): the transition is made in this process's memory, and the shared state is not called down —
    every other breaker, rate limit and velocity counter of the process stays shared, and ``/readyz`` stays ready."""
    health = SharedStateHealth("provider breaker state", 5.0, ManualClock())
    shared = RedisBreakerStore.from_url(restartable_redis.url)
    shared._lock_timeout = 0.2  # the wait for the lock, short for the test
    store = DegradableBreakerStore(shared, MemoryBreakerStore(), health)
    lender = f"lender-{uuid.uuid4().hex[:8]}"
    holder = shared._redis.lock(shared._key(lender, "lock"), timeout=30)
    assert holder.acquire(blocking=False)
    try:
        ran: list[str] = []

        def transition() -> str:
            ran.append("transition")
            return "done"

        assert await store.run(lender, transition) == "done"
        assert ran == ["transition"], "run once, in this process's memory"
        assert not health.degraded
    finally:
        holder.release()
        await store.aclose()
