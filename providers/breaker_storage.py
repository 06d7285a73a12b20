"""pybreaker storage of one breaker in Redis that raises when Redis does: pybreaker's own ``CircuitRedisStorage``
swallows every ``RedisError`` (a breaker whose Redis is down reads "closed, no failures" and never opens), so a
store that must fall back on local state (``providers.shared_state.DegradableBreakerStore``) could not tell. Same
key layout as pybreaker's (``{namespace}:pybreaker:{key}``), so ``RedisBreakerStore``'s fast paths read it."""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pybreaker

if TYPE_CHECKING:
    import redis


class RaisingRedisStorage(pybreaker.CircuitBreakerStorage):
    def __init__(self, state: str, client: redis.Redis, namespace: str) -> None:
        super().__init__("redis")
        self._redis, self._prefix = client, f"{namespace}:{pybreaker.CircuitRedisStorage.BASE_NAMESPACE}"
        self._initial = state
        self._initialize()

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    def _initialize(self) -> None:
        pipe = self._redis.pipeline()
        pipe.setnx(self._key("fail_counter"), 0)
        pipe.setnx(self._key("success_counter"), 0)
        pipe.setnx(self._key("state"), self._initial)
        pipe.execute()

    @property
    def state(self) -> str:
        value = self._redis.get(self._key("state"))
        if value is None:  # a restarted (empty) Redis: the breaker starts over, as pybreaker's storage does
            self._initialize()
            return self._initial
        return value.decode() if isinstance(value, bytes) else str(value)

    @state.setter
    def state(self, state: str) -> None:
        self._redis.set(self._key("state"), str(state))

    def increment_counter(self) -> None:
        self._redis.incr(self._key("fail_counter"))

    def reset_counter(self) -> None:
        self._redis.set(self._key("fail_counter"), 0)

    def increment_success_counter(self) -> None:
        self._redis.incr(self._key("success_counter"))

    def reset_success_counter(self) -> None:
        self._redis.set(self._key("success_counter"), 0)

    @property
    def counter(self) -> int:
        return int(self._redis.get(self._key("fail_counter")) or 0)

    @property
    def success_counter(self) -> int:
        return int(self._redis.get(self._key("success_counter")) or 0)

    @property
    def opened_at(self) -> datetime | None:
        value = self._redis.get(self._key("opened_at"))
        return None if not value else datetime(*time.gmtime(int(value))[:6], tzinfo=UTC)

    @opened_at.setter
    def opened_at(self, now: datetime) -> None:
        self._redis.set(self._key("opened_at"), int(calendar.timegm(now.timetuple())))
