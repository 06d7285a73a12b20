"""A process's Redis clients keep a bounded pool of reused connections: many breaker and rate-limit operations, one
after another or hundreds at once, open only a few connections to Redis (counted by the server itself:
``total_connections_received``). With ``Redis.from_url``'s pools the sequential case opened as few, but a pool opened
one connection per command in flight and, past its default 100, raised ``MaxConnectionsError`` — which the degrading
stores take for Redis being down."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest
import redis.asyncio

from providers._breaker import CLOSED_READ_SECONDS
from providers._exceptions import CircuitOpen
from providers.resilience import AsyncBreaker, RedisBreakerStore, RedisRateLimiter
from risk.redis_clients import ASYNC_POOL_SIZE, async_redis
from tests.integration.providers.breaker_worker import POLICY

pytestmark = pytest.mark.integration


async def _opened(observer: redis.asyncio.Redis) -> int:
    return int((await observer.info("stats"))["total_connections_received"])


async def _lender_call(breaker: AsyncBreaker, limiter: RedisRateLimiter, name: str) -> None:
    """What the fan-out does per lender: the rate limit, the breaker's admission and its recorded success."""
    await limiter.acquire(name, 5.0)
    await breaker.record(await breaker.admit(), failed=False)


async def test_breaker_and_rate_limit_reuse_a_bounded_pool(redis_url: str) -> None:
    name = f"pooled-{uuid.uuid4().hex[:8]}"
    observer = redis.asyncio.Redis.from_url(redis_url)
    store = RedisBreakerStore.from_url(redis_url)
    limiter_client = async_redis(redis_url)
    try:
        await observer.ping()
        before = await _opened(observer)
        breaker = await AsyncBreaker(name, POLICY, store).start()
        limiter = RedisRateLimiter(limiter_client, rate=1_000_000, burst=1_000_000)

        for _ in range(200):
            await _lender_call(breaker, limiter, name)
        sequential = await _opened(observer) - before
        assert sequential <= 3  # the breaker's two clients and the limiter's: one connection each, reused

        for _ in range(2):  # 300 lender calls at once, twice
            await asyncio.gather(*(_lender_call(breaker, limiter, name) for _ in range(300)))
        concurrent = await _opened(observer) - before
        # each async client's pool is full at most; the synchronous one is only used to start the breaker
        assert concurrent <= 2 * ASYNC_POOL_SIZE + 1, concurrent
        assert await breaker.state() == "closed"
    finally:
        await store.aclose()
        await limiter_client.aclose()
        await observer.aclose()


def _counted(client: Any, sent: list[str]) -> None:
    """Every command ``client`` sends (a script is one: its own commands run inside Redis) appended to ``sent``."""
    execute = client.execute_command

    def counting(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return execute(*args, **options)

    client.execute_command = counting


async def test_a_lender_call_while_closed_is_two_redis_round_trips_and_sees_another_process_open_it(
    redis_url: str,
) -> None:
    """Per call: the rate limit's script and the success's (the state read and the failure count reset in one); the
    state is read again only every ``CLOSED_READ_SECONDS``, or at once after this process's own failure. It was four
    round trips: the limit, a state read to admit, a state read and a counter read to record."""
    name = f"round-trips-{uuid.uuid4().hex[:8]}"
    here, there = RedisBreakerStore.from_url(redis_url), RedisBreakerStore.from_url(redis_url)
    limiter_client = async_redis(redis_url)
    try:
        breaker = await AsyncBreaker(name, POLICY, here).start()
        other = await AsyncBreaker(name, POLICY, there).start()
        limiter = RedisRateLimiter(limiter_client, rate=1_000_000, burst=1_000_000)
        sent: list[str] = []
        for client in (here._async, here._redis, limiter_client):
            _counted(client, sent)
        for _ in range(100):
            await _lender_call(breaker, limiter, name)
        assert 200 <= len(sent) <= 200 + 3, Counter(sent)  # and a state read every CLOSED_READ_SECONDS

        for _ in range(POLICY.fail_max):  # another process opens the shared breaker
            await other.record(await other.admit(), failed=True)
        assert await other.state() == "open"
        await asyncio.sleep(CLOSED_READ_SECONDS)
        with pytest.raises(CircuitOpen):
            await breaker.admit()
    finally:
        await here.aclose()
        await there.aclose()
        await limiter_client.aclose()
