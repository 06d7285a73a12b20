"""Where a breaker's state lives: this process's memory (``MemoryBreakerStore``) or Redis shared by every process
(``RedisBreakerStore``), with its recorded transitions."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pybreaker
from redis.exceptions import LockError, LockNotOwnedError

from providers._batching import TurnBatch
from providers.breaker_storage import RaisingRedisStorage

if TYPE_CHECKING:
    import redis
    import redis.asyncio


T = TypeVar("T")
log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN
KEY_PREFIX = "creditmesh:provider"
MAX_TRANSITIONS = 50
#: how long a lender call's recorded success may wait for others to share its Redis round trip (``settle_later``):
#: a request's ten answers, and other requests' answers under load, go as one script instead of one per turn
SETTLE_WINDOW_SECONDS = 0.005


@dataclass(frozen=True, slots=True)
class Transition:
    from_state: str | None
    to_state: str
    at: float

    def as_document(self) -> dict[str, Any]:
        return {
            "from": self.from_state,
            "to": self.to_state,
            "at": datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds"),
        }


class BreakerStore(Protocol):
    """Where breaker state lives: this process's memory, or Redis shared by every process."""

    def storage(self, name: str) -> pybreaker.CircuitBreakerStorage: ...
    async def run(self, name: str, operation: Callable[[], T]) -> T: ...
    async def peek_state(self, name: str) -> str | None: ...
    def settle_later(self, name: str) -> asyncio.Future[str | None] | None: ...
    def take_trial(self, name: str, limit: int, ttl: float) -> bool: ...
    def release_trial(self, name: str) -> None: ...
    def trials(self, name: str) -> int: ...
    def opened_at(self, name: str) -> float | None: ...
    def set_opened_at(self, name: str, at: float) -> None: ...
    def add_transition(self, name: str, transition: Transition) -> None: ...
    def transitions(self, name: str) -> list[Transition]: ...


class MemoryBreakerStore:
    """State in this process. Operations run inline: they do no I/O and one event loop serializes them. A trial slot
    frees itself after its ``ttl`` as a Redis one does (``clock``: ``time.monotonic``), so a slot never released
    cannot hold the breaker half-open for good."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._trials: dict[str, list[float]] = {}  # each taken slot's expiry, by breaker
        self._opened_at: dict[str, float] = {}
        self._transitions: dict[str, deque[Transition]] = {}
        self._lock = threading.Lock()

    def storage(self, name: str) -> pybreaker.CircuitBreakerStorage:
        return pybreaker.CircuitMemoryStorage(CLOSED)

    async def run(self, name: str, operation: Callable[[], T]) -> T:
        with self._lock:
            return operation()

    async def peek_state(self, name: str) -> str | None:
        return None  # run() is as cheap: no fast path needed

    def settle_later(self, name: str) -> asyncio.Future[str | None] | None:
        return None  # no fast path: the caller records through run()

    def take_trial(self, name: str, limit: int, ttl: float) -> bool:
        slots = self._live_trials(name)
        if len(slots) >= limit:
            return False
        slots.append(self._clock() + ttl)
        return True

    def release_trial(self, name: str) -> None:
        slots = self._live_trials(name)
        if slots:
            slots.remove(min(slots))

    def trials(self, name: str) -> int:
        return len(self._live_trials(name))

    def _live_trials(self, name: str) -> list[float]:
        now = self._clock()
        slots = self._trials[name] = [expiry for expiry in self._trials.get(name, ()) if expiry > now]
        return slots

    def opened_at(self, name: str) -> float | None:
        return self._opened_at.get(name)

    def set_opened_at(self, name: str, at: float) -> None:
        self._opened_at[name] = at

    def add_transition(self, name: str, transition: Transition) -> None:
        self._transitions.setdefault(name, deque(maxlen=MAX_TRANSITIONS)).append(transition)

    def transitions(self, name: str) -> list[Transition]:
        return list(self._transitions.get(name, ()))


#: calls' successes while closed, several providers' at once (KEYS: each provider's state and failure counter, in
#: pairs): each counter back to 0 where its state is closed; returns each state read (false: none yet)
_SETTLE_SUCCESSES = f"""
local states = {{}}
for i = 1, #KEYS, 2 do
  local state = redis.call('GET', KEYS[i])
  if state == '{CLOSED}' and redis.call('GET', KEYS[i + 1]) ~= '0' then redis.call('SET', KEYS[i + 1], 0) end
  states[(i + 1) / 2] = state
end
return states
"""


def _text(value: Any) -> str | None:
    if value is None or value is False:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBreakerStore:
    """State in Redis, through pybreaker's ``CircuitRedisStorage`` (a synchronous client). Every operation that may
    change the state runs in this store's worker threads under a per-provider Redis lock: off the event loop, and
    atomic across processes. The common case — a call while closed, and its success — only reads the state and
    resets the failure counter, through an async client, with no lock and no thread; the reads of one event-loop turn
    (several providers' calls of a request, or of requests at once) are one command, and so are the successes of one
    ``SETTLE_WINDOW_SECONDS`` (``settle_later``)."""

    def __init__(
        self, client: redis.Redis, async_client: redis.asyncio.Redis, lock_timeout: float = 5.0, workers: int = 4
    ) -> None:
        self._redis = client
        self._async = async_client
        self._lock_timeout = lock_timeout
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="breaker-redis")
        self._settle = async_client.register_script(_SETTLE_SUCCESSES)
        # the reads of one event-loop turn (a request's lender calls) go to Redis together, the successes of a window
        self._peeks: TurnBatch[str, str | None] = TurnBatch(self._peek_many)
        self._settles: TurnBatch[str, str | None] = TurnBatch(self._settle_many, delay=SETTLE_WINDOW_SECONDS)

    @classmethod
    def from_url(cls, url: str, workers: int = 4) -> RedisBreakerStore:
        """Both clients of ``url``, each on a bounded pool of reused connections with socket timeouts
        (``risk.redis_clients``); the synchronous one holds a connection per worker thread and a few more."""
        from risk.redis_clients import async_redis, sync_redis

        return cls(sync_redis(url, max_connections=workers + 4), async_redis(url), workers=workers)

    def _pybreaker_key(self, name: str, key: str) -> str:
        # CircuitRedisStorage's layout: "{namespace}:pybreaker:{key}"
        return f"{KEY_PREFIX}:{name}:{pybreaker.CircuitRedisStorage.BASE_NAMESPACE}:{key}"

    async def peek_state(self, name: str) -> str | None:
        """The state as stored (None: no state yet); the reads of one turn are one ``MGET``."""
        return await self._peeks.submit(name)

    async def _peek_many(self, names: Sequence[str]) -> list[str | None]:
        values = await self._async.mget([self._pybreaker_key(name, "state") for name in names])
        return [_text(value) for value in values]

    def settle_later(self, name: str) -> asyncio.Future[str | None]:
        """A call's success while closed, sent with the other successes of the next ``SETTLE_WINDOW_SECONDS`` in one
        round trip (a script: atomic): the failure counter back to 0 where the state is closed. The future holds the
        state read (None: no state yet, as after Redis restarted empty). The caller does not wait for it: every
        command this store sends later for this process (``run``: failures, transitions, trials, reads) waits until
        the successes before it have been sent and answered, so this process's outcomes reach Redis in order."""
        return self._settles.post(name)

    async def _settle_many(self, names: Sequence[str]) -> list[str | None]:
        keys: list[str] = []
        for name in names:
            keys += [self._pybreaker_key(name, "state"), self._pybreaker_key(name, "fail_counter")]
        return [_text(value) for value in await self._settle(keys=keys)]

    def _key(self, name: str, suffix: str) -> str:
        return f"{KEY_PREFIX}:{name}:{suffix}"

    def storage(self, name: str) -> pybreaker.CircuitBreakerStorage:
        # raises when Redis does (pybreaker's CircuitRedisStorage reads "closed" instead): see DegradableBreakerStore
        return RaisingRedisStorage(CLOSED, self._redis, namespace=f"{KEY_PREFIX}:{name}")

    async def run(self, name: str, operation: Callable[[], T]) -> T:
        await self._settles.drain()  # this process's successes first: a failure after them counts from them

        def locked() -> T:
            lock = self._redis.lock(
                self._key(name, "lock"), timeout=self._lock_timeout, blocking_timeout=self._lock_timeout
            )
            if not lock.acquire():
                raise LockError(f"the breaker lock of {name} was not acquired within {self._lock_timeout} s")
            try:
                return operation()
            finally:
                try:
                    lock.release()
                except LockNotOwnedError:  # the operation outlived the lock (a starved thread): it is done all the same
                    log.warning(
                        "the breaker lock of %s expired before it was released (%s s)", name, self._lock_timeout
                    )

        return await asyncio.get_running_loop().run_in_executor(self._executor, locked)

    def take_trial(self, name: str, limit: int, ttl: float) -> bool:
        key = self._key(name, "trials")
        if int(self._redis.get(key) or 0) >= limit:
            return False
        pipe = self._redis.pipeline()
        pipe.incr(key)
        pipe.pexpire(key, max(1, int(ttl * 1000)))  # a crashed process's trial slot frees itself
        pipe.execute()
        return True

    def release_trial(self, name: str) -> None:
        key = self._key(name, "trials")
        if int(self._redis.decr(key)) < 0:
            self._redis.set(key, 0)

    def trials(self, name: str) -> int:
        return int(self._redis.get(self._key(name, "trials")) or 0)

    def opened_at(self, name: str) -> float | None:
        value = self._redis.get(self._key(name, "opened_at"))
        return None if value is None else float(value)

    def set_opened_at(self, name: str, at: float) -> None:
        self._redis.set(self._key(name, "opened_at"), repr(at))

    def add_transition(self, name: str, transition: Transition) -> None:
        key = self._key(name, "transitions")
        document = {"from": transition.from_state, "to": transition.to_state, "at": transition.at}
        pipe = self._redis.pipeline()
        pipe.rpush(key, json.dumps(document))
        pipe.ltrim(key, -MAX_TRANSITIONS, -1)
        pipe.execute()

    def transitions(self, name: str) -> list[Transition]:
        raw = self._redis.lrange(self._key(name, "transitions"), 0, -1)
        documents = [json.loads(item) for item in raw]
        return [Transition(d["from"], d["to"], float(d["at"])) for d in documents]

    def close(self) -> None:
        self._executor.shutdown(wait=False)
        self._redis.close()

    async def aclose(self) -> None:
        await self._settles.drain()
        self.close()
        await self._async.aclose()
