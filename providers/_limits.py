"""A bulkhead (calls in flight per provider in this process) and a rate limit per provider (a token bucket in this
process's memory or in Redis, shared by every process)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol

from providers._batching import TurnBatch
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
        await self.enter(name, remaining)
        try:
            yield
        finally:
            self.leave()

    async def enter(self, name: str, remaining: float) -> None:
        """Take a slot (``BulkheadFull`` when none frees up within ``remaining`` seconds); ``leave`` gives it back."""
        if not self._slots.locked():  # a free slot is taken at once: no timer to arm and cancel (every lender call)
            await self._slots.acquire()
        else:
            try:
                async with asyncio.timeout(max(remaining, 0)):
                    await self._slots.acquire()
            except TimeoutError:
                raise BulkheadFull(f"{name}: {self.limit} calls already in flight") from None
        self.in_flight += 1

    def leave(self) -> None:
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


#: a token from each bucket of KEYS (one per lender call of the batch, a lender as often as it was asked), in order,
#: each with its own rate and burst (ARGV: now in ms, then rate and burst per key); returns each call's wait in ms
#: (0: taken). A bucket named twice takes twice, the second from what the first left.
_BUCKETS_SCRIPT = """
local now = tonumber(ARGV[1])
local waits = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(state[1]) or burst
  local at = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
  local wait = 0
  if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
  waits[i] = wait
end
return waits
"""


class RedisBuckets:
    """Every provider's token bucket in Redis on one async client: the takes of one event-loop turn — a request's
    lender calls start together — go to Redis as one script over all their buckets (``TurnBatch``), one round trip
    instead of one per lender call. Shared by a process's ``RedisRateLimiter``s."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._script = client.register_script(_BUCKETS_SCRIPT)
        self.batch: TurnBatch[tuple[str, float, int], int] = TurnBatch(self._take)

    async def _take(self, takes: Sequence[tuple[str, float, int]]) -> list[int]:
        args: list[float | int] = [int(time.time() * 1000)]
        for _, rate, burst in takes:
            args += [rate, burst]
        waits = await self._script(keys=[f"{KEY_PREFIX}:{name}:bucket" for name, _, _ in takes], args=args)
        return [int(wait) for wait in waits]

    async def take(self, name: str, rate: float, burst: int) -> int:
        """A token from ``name``'s bucket: 0, or how many ms until the bucket holds one."""
        return await self.batch.submit((name, rate, burst))


class RedisRateLimiter:
    """A token bucket per provider in Redis (one Lua script over a turn's buckets, ``RedisBuckets``): the limit holds
    across processes. ``buckets`` is shared by a process's limiters so a request's lender calls share a round trip;
    without it the limiter has its own."""

    def __init__(
        self, client: redis.asyncio.Redis, rate: float, burst: int, buckets: RedisBuckets | None = None
    ) -> None:
        self.rate, self.burst = rate, burst
        self._buckets = buckets or RedisBuckets(client)

    async def acquire(self, name: str, remaining: float) -> None:
        end = time.monotonic() + remaining
        while True:
            wait_ms = await self._buckets.take(name, self.rate, self.burst)
            if wait_ms == 0:
                return
            if time.monotonic() + wait_ms / 1000 > end:
                raise RateLimited(f"{name}: over {self.rate:g} calls/s")
            await asyncio.sleep(wait_ms / 1000)
