"""Velocity counters that degrade rather than fail: Redis shares them across processes; when Redis errors, each
process goes on with its own counts (logged once), tries Redis again every ``retry_seconds``, and shares again as
soon as it answers (logged once). A process's own events are always also counted locally, so the local limits it
falls back on already hold its recent requests; while degraded, a limit holds per process, not across them.
``/readyz`` reports Redis ``degraded`` meanwhile (it pings it itself)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.exceptions import RedisError

from risk.velocity import Admission, InMemoryVelocityStore, VelocityRequest, VelocityStore

log = logging.getLogger(__name__)
T = TypeVar("T")

#: what a Redis call raises when the server is down, refusing or too slow (redis-py wraps most, not all, OSErrors)
SHARED_STATE_ERRORS = (RedisError, OSError)
#: a Redis that hangs must not hold a request longer than this (redis-py waits forever by default)
REDIS_TIMEOUTS: dict[str, Any] = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}


class SharedStateHealth:
    """Whether the shared store answers: after an error it is left alone for ``retry_seconds``, then tried again."""

    def __init__(self, what: str, retry_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.retry_seconds, self._clock = what, retry_seconds, clock
        self._retry_at: float | None = None

    @property
    def degraded(self) -> bool:
        return self._retry_at is not None

    def serving_locally(self) -> bool:
        """Whether this process serves from its local state now: the shared store failed, and is not to be tried
        again yet (after that, the next call finds out)."""
        return self._retry_at is not None and self._clock() < self._retry_at

    def worth_trying(self) -> bool:
        return self._retry_at is None or self._clock() >= self._retry_at

    def failed(self, err: BaseException) -> None:
        if self._retry_at is None:
            log.warning("%s: Redis unavailable (%s); serving with this process's local state", self.what, err)
        self._retry_at = self._clock() + self.retry_seconds

    def answered(self) -> None:
        if self._retry_at is not None:
            log.warning("%s: Redis is back; sharing state across processes again", self.what)
        self._retry_at = None


class DegradableVelocityStore:
    """``shared`` (a ``RedisVelocityStore``) while it answers, else ``local``; every hit and claim is also
    recorded locally."""

    def __init__(
        self,
        shared: VelocityStore,
        local: InMemoryVelocityStore | None = None,
        *,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shared = shared
        self.local = local if local is not None else InMemoryVelocityStore()
        self.health = SharedStateHealth("velocity limits", retry_seconds, clock)

    async def _shared(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """The shared store's answer, or None when it is down (or was, less than ``retry_seconds`` ago)."""
        if not self.health.worth_trying():
            return None
        try:
            result = await call()
        except SHARED_STATE_ERRORS as err:
            self.health.failed(err)
            return None
        self.health.answered()
        return result

    async def count(self, key: str, now: float, window_seconds: int) -> int:
        shared = await self._shared(lambda: self.shared.count(key, now, window_seconds))
        return await self.local.count(key, now, window_seconds) if shared is None else shared

    async def hit(self, key: str, now: float, window_seconds: int) -> int:
        local = await self.local.hit(key, now, window_seconds)
        shared = await self._shared(lambda: self.shared.hit(key, now, window_seconds))
        return local if shared is None else shared

    async def counts(self, keys: Sequence[str], now: float, window_seconds: int) -> list[int]:
        shared = await self._shared(lambda: self.shared.counts(keys, now, window_seconds))
        return await self.local.counts(keys, now, window_seconds) if shared is None else shared

    async def hits(self, keys: Sequence[str], now: float, window_seconds: int) -> list[int]:
        local = await self.local.hits(keys, now, window_seconds)
        shared = await self._shared(lambda: self.shared.hits(keys, now, window_seconds))
        return local if shared is None else shared

    async def admit(self, request: VelocityRequest, now: float) -> Admission:
        """The shared store's one round trip while it answers, what it recorded recorded locally too (the claim
        unless a counter refused, the hits when admitted); else the local store's steps."""
        shared = await self._shared(lambda: self.shared.admit(request, now))
        if shared is None:
            return await self.local.admit(request, now)
        if request.wallet and (shared.refused_by is None or shared.refused_by == len(request.keys)):
            await self.local.claim_wallet(request.wallet, request.identity)
        if shared.refused_by is None:
            await self.local.hits(request.keys, now, request.window_seconds)
        return shared

    async def claim_wallet(self, wallet: str, identity: str) -> int:
        local = await self.local.claim_wallet(wallet, identity)
        shared = await self._shared(lambda: self.shared.claim_wallet(wallet, identity))
        return local if shared is None else shared
