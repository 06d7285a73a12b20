"""A bulkhead (calls in flight per provider in this process) and a rate limit per provider (a token bucket in this
process's memory or in Redis, shared by every process)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol

from providers._exceptions import BulkheadFull, RateLimited

if TYPE_CHECKING:
    import redis
    import redis.asyncio

from providers._breaker_stores import KEY_PREFIX


class Bulkhead:
    """At most ``limit`` calls to one provider in flight in this process; waiting for a slot ends at the deadline."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self.in_flight = 0

    @asynccontextmanager
    async def slot(self, name: str, remaining: float) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(max(remaining, 0)):
                await self._slots.acquire()
        except TimeoutError:
            raise BulkheadFull(f"{name}: {self.limit} calls already in flight") from None
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()


class RateLimiter(Protocol):
    async def acquire(self, name: str, remaining: float) -> None: ...


class MemoryRateLimiter:
    """A token bucket per provider in this process."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = float(burst)
        self._at = clock()

    def _take(self) -> float:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate

    async def acquire(self, name: str, remaining: float) -> None:
        end = time.monotonic() + remaining
        while (wait := self._take()) > 0:
            if time.monotonic() + wait > end:
                raise RateLimited(f"{name}: over {self.rate:g} calls/s")
            await asyncio.sleep(wait)


_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
"""


class RedisRateLimiter:
    """A token bucket per provider in Redis (an async client and one Lua script): the limit holds across
    processes."""

    def __init__(self, client: redis.asyncio.Redis, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._redis = client
        self._script = client.register_script(_BUCKET_SCRIPT)

    async def acquire(self, name: str, remaining: float) -> None:
        end = time.monotonic() + remaining
        while True:
            wait_ms = int(
                await self._script(
                    keys=[f"{KEY_PREFIX}:{name}:bucket"], args=[self.rate, self.burst, int(time.time() * 1000)]
                )
            )
            if wait_ms == 0:
                return
            if time.monotonic() + wait_ms / 1000 > end:
                raise RateLimited(f"{name}: over {self.rate:g} calls/s")
            await asyncio.sleep(wait_ms / 1000)
