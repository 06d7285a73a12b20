"""Resilience per provider: a circuit breaker on pybreaker, quote retries with tenacity inside the caller's
deadline, a timeout on every call, a bulkhead, a rate limit, and health (latency percentiles, error rate, breaker
state and its transitions).

Why pybreaker is driven explicitly here instead of through ``@breaker``, ``call()`` or ``calling()`` (measured, see
TOOLCHAIN.md): the decorator never sees an ``async def``'s failure; ``call()`` holds a lock for the whole call;
``calling()`` lets every concurrent call through in half-open and, with ``CircuitRedisStorage``, does Redis I/O on
the event loop. So pybreaker keeps the state (its ``CircuitMemoryStorage`` or ``CircuitRedisStorage``: state,
failure and success counters) and makes the transitions (``open()``, ``half_open()``, ``close()``, whose listeners
record them), while ``AsyncBreaker`` decides admission and outcome:

* closed: every call passes; a failure increments the counter, ``fail_max`` consecutive failures open the breaker;
  a success resets the counter;
* open: every call is refused with ``CircuitOpen`` until ``reset_timeout`` has passed since opening, then the
  breaker goes half-open;
* half-open: at most ``half_open_max_calls`` trial calls are in flight at once (a slot counter; in Redis, shared by
  every process); a trial's failure opens the breaker again, ``success_threshold`` trial successes close it;
  outcomes of calls that were not trials of the current state are ignored, so a slow call started while closed
  cannot close or re-open the breaker late.

With Redis, every transition runs in a worker thread under a Redis lock named after the provider, so processes
never interleave a read-modify-write of the shared state, and the event loop never waits on Redis."""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

import pybreaker
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential
from tenacity.stop import stop_base

from providers._exceptions import (
    BulkheadFull,
    CircuitOpen,
    LocalRequestError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
)
from providers._lender_phases import LenderPhases
from providers.base import AdapterContext, ProviderAdapter, ProviderRegistration
from providers.breaker_storage import RaisingRedisStorage
from providers.models import (
    Capabilities,
    Decline,
    FundingStatus,
    ProviderHealth,
    ProviderOffer,
    QuoteRequest,
)
from providers.policy import ResiliencePolicy

if TYPE_CHECKING:
    import redis
    import redis.asyncio

T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN
KEY_PREFIX = "creditmesh:provider"
MAX_TRANSITIONS = 50


# ---------------------------------------------------------------------------------------------------- deadlines

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("creditmesh_provider_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[float]:
    """Every provider call started inside (including in tasks created inside) ends within ``seconds`` from now,
    retries included. Yields the absolute ``time.monotonic()`` deadline."""
    at = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(at if outer is None else min(outer, at))
    try:
        yield at
    finally:
        _deadline.reset(token)


def current_deadline() -> float | None:
    return _deadline.get()


# ---------------------------------------------------------------------------------------------------- breaker state


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
    async def clear_failures(self, name: str) -> None: ...
    def take_trial(self, name: str, limit: int, ttl: float) -> bool: ...
    def release_trial(self, name: str) -> None: ...
    def trials(self, name: str) -> int: ...
    def opened_at(self, name: str) -> float | None: ...
    def set_opened_at(self, name: str, at: float) -> None: ...
    def add_transition(self, name: str, transition: Transition) -> None: ...
    def transitions(self, name: str) -> list[Transition]: ...


class MemoryBreakerStore:
    """State in this process. Operations run inline: they do no I/O and one event loop serializes them."""

    def __init__(self) -> None:
        self._trials: dict[str, int] = {}
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

    async def clear_failures(self, name: str) -> None:
        # record() only calls this after peek_state() reported CLOSED, and this store reports nothing (None).
        raise AssertionError("the memory store never takes the closed-state fast path")

    def take_trial(self, name: str, limit: int, ttl: float) -> bool:
        if self._trials.get(name, 0) >= limit:
            return False
        self._trials[name] = self._trials.get(name, 0) + 1
        return True

    def release_trial(self, name: str) -> None:
        self._trials[name] = max(0, self._trials.get(name, 0) - 1)

    def trials(self, name: str) -> int:
        return self._trials.get(name, 0)

    def opened_at(self, name: str) -> float | None:
        return self._opened_at.get(name)

    def set_opened_at(self, name: str, at: float) -> None:
        self._opened_at[name] = at

    def add_transition(self, name: str, transition: Transition) -> None:
        self._transitions.setdefault(name, deque(maxlen=MAX_TRANSITIONS)).append(transition)

    def transitions(self, name: str) -> list[Transition]:
        return list(self._transitions.get(name, ()))


class RedisBreakerStore:
    """State in Redis, through pybreaker's ``CircuitRedisStorage`` (a synchronous client). Every operation that may
    change the state runs in this store's worker threads under a per-provider Redis lock: off the event loop, and
    atomic across processes. The common case — a call while closed, and its success — only reads the state and
    resets the failure counter, through an async client, with no lock and no thread."""

    def __init__(
        self, client: redis.Redis, async_client: redis.asyncio.Redis, lock_timeout: float = 5.0, workers: int = 4
    ) -> None:
        self._redis = client
        self._async = async_client
        self._lock_timeout = lock_timeout
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="breaker-redis")

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisBreakerStore:
        """Both clients from ``url``; ``options`` for both (e.g. socket timeouts: redis-py waits forever by
        default)."""
        import redis
        import redis.asyncio

        return cls(redis.Redis.from_url(url, **options), redis.asyncio.Redis.from_url(url, **options))

    def _pybreaker_key(self, name: str, key: str) -> str:
        # CircuitRedisStorage's layout: "{namespace}:pybreaker:{key}"
        return f"{KEY_PREFIX}:{name}:{pybreaker.CircuitRedisStorage.BASE_NAMESPACE}:{key}"

    async def peek_state(self, name: str) -> str | None:
        value = await self._async.get(self._pybreaker_key(name, "state"))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def clear_failures(self, name: str) -> None:
        key = self._pybreaker_key(name, "fail_counter")
        if int(await self._async.get(key) or 0):
            await self._async.set(key, 0)

    def _key(self, name: str, suffix: str) -> str:
        return f"{KEY_PREFIX}:{name}:{suffix}"

    def storage(self, name: str) -> pybreaker.CircuitBreakerStorage:
        # raises when Redis does (pybreaker's CircuitRedisStorage reads "closed" instead): see DegradableBreakerStore
        return RaisingRedisStorage(CLOSED, self._redis, namespace=f"{KEY_PREFIX}:{name}")

    async def run(self, name: str, operation: Callable[[], T]) -> T:
        def locked() -> T:
            with self._redis.lock(
                self._key(name, "lock"), timeout=self._lock_timeout, blocking_timeout=self._lock_timeout
            ):
                return operation()

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
        self.close()
        await self._async.aclose()


@dataclass(frozen=True, slots=True)
class Permit:
    trial: bool


class _TransitionListener(pybreaker.CircuitBreakerListener):
    def __init__(self, breaker: AsyncBreaker) -> None:
        self._owner = breaker

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._owner._on_transition(old_state.name if old_state else None, new_state.name)


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    state: str
    failures: int
    trials_in_flight: int
    opened_at: float | None
    transitions: list[Transition]


class AsyncBreaker:
    """A pybreaker ``CircuitBreaker`` made safe for async calls (see the module docstring)."""

    def __init__(
        self, name: str, policy: ResiliencePolicy, store: BreakerStore, clock: Callable[[], float] = time.time
    ) -> None:
        self.name = name
        self.policy = policy
        self._store = store
        self._clock = clock
        self._breaker: pybreaker.CircuitBreaker | None = None

    async def start(self) -> Self:
        """Create the pybreaker breaker (its Redis storage initializes keys, so this runs through the store)."""

        def create() -> pybreaker.CircuitBreaker:
            return pybreaker.CircuitBreaker(
                fail_max=self.policy.fail_max,
                reset_timeout=self.policy.reset_timeout_seconds,
                success_threshold=self.policy.success_threshold,
                state_storage=self._store.storage(self.name),
                listeners=[_TransitionListener(self)],
                name=self.name,
                throw_new_error_on_trip=False,
            )

        self._breaker = await self._store.run(self.name, create)
        return self

    @property
    def _cb(self) -> pybreaker.CircuitBreaker:
        if self._breaker is None:
            raise RuntimeError(f"breaker {self.name} used before start()")
        return self._breaker

    def _on_transition(self, old: str | None, new: str) -> None:
        # pybreaker reports its cached state as the old one; with shared storage the state read is the truth
        old = self._read_state or old
        self._read_state = new
        now = self._clock()
        if new == OPEN:
            self._store.set_opened_at(self.name, now)
        self._store.add_transition(self.name, Transition(old, new, now))

    # ------------------------------------------------------------------ admission and outcome

    async def admit(self) -> Permit:
        """A permit to call the provider now, or ``CircuitOpen``."""
        if await self._store.peek_state(self.name) == CLOSED:
            return Permit(trial=False)
        permit = await self._store.run(self.name, self._admit)
        if permit is None:
            raise CircuitOpen(f"{self.name}: circuit {self._last_refusal}")
        return permit

    _last_refusal = "open"

    _read_state: str | None = None

    def _admit(self) -> Permit | None:
        state = self._read_state = self._cb.current_state
        if state == OPEN:
            opened = self._store.opened_at(self.name)
            if opened is not None and self._clock() < opened + self.policy.reset_timeout_seconds:
                self._last_refusal = "open"
                return None
            self._cb.half_open()
            state = HALF_OPEN
        if state == HALF_OPEN:
            ttl = self.policy.call_timeout_seconds * self.policy.quote_attempts + self.policy.accept_timeout_seconds
            if self._store.take_trial(self.name, self.policy.half_open_max_calls, ttl):
                return Permit(trial=True)
            self._last_refusal = "half-open: every trial call is taken"
            return None
        return Permit(trial=False)

    async def record(self, permit: Permit, failed: bool) -> None:
        if not permit.trial:
            state = await self._store.peek_state(self.name)
            if state is not None and state != CLOSED:
                return  # a non-trial outcome outside closed says nothing (see _record)
            if state == CLOSED and not failed:
                await self._store.clear_failures(self.name)
                return
        await self._store.run(self.name, lambda: self._record(permit, failed))

    def _record(self, permit: Permit, failed: bool) -> None:
        if permit.trial:
            self._store.release_trial(self.name)
        storage = self._cb._state_storage
        state = self._read_state = self._cb.current_state
        if state == CLOSED:
            if failed:
                storage.increment_counter()
                if storage.counter >= self.policy.fail_max:
                    self._cb.open()
            else:
                storage.reset_counter()
        elif state == HALF_OPEN and permit.trial:
            if failed:
                self._cb.open()
            else:
                storage.increment_success_counter()
                if storage.success_counter >= self.policy.success_threshold:
                    self._cb.close()
        # open, or a non-trial call ending in half-open: its outcome says nothing about the current state

    async def snapshot(self) -> BreakerSnapshot:
        def read() -> BreakerSnapshot:
            return BreakerSnapshot(
                state=self._cb.current_state,
                failures=self._cb.fail_counter,
                trials_in_flight=self._store.trials(self.name),
                opened_at=self._store.opened_at(self.name),
                transitions=self._store.transitions(self.name),
            )

        return await self._store.run(self.name, read)

    async def state(self) -> str:
        return await self._store.run(self.name, lambda: str(self._cb.current_state))

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Admit, run the block, record its outcome (a ``ProviderError`` that counts, any other exception, or the
        caller's cancellation are failures; ``ProviderRejected`` is neither)."""
        permit = await self.admit()
        try:
            yield
        except asyncio.CancelledError:
            _background(self.record(permit, failed=True))
            raise
        except ProviderError as err:
            await self.record(permit, failed=err.counts_as_failure)
            raise
        except BaseException:
            await self.record(permit, failed=True)
            raise
        else:
            await self.record(permit, failed=False)


_pending: set[asyncio.Task[None]] = set()


def _background(work: Awaitable[None]) -> None:
    """Finish recording after the caller was cancelled, without holding the caller up."""

    async def run() -> None:
        await work

    task = asyncio.ensure_future(run())
    _pending.add(task)
    task.add_done_callback(_pending.discard)


# ---------------------------------------------------------------------------------------------------- bulkhead, rate


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


# ---------------------------------------------------------------------------------------------------- health


@dataclass(frozen=True, slots=True)
class Failure:
    at: float
    operation: str
    reason: str

    def as_document(self) -> dict[str, str]:
        return {
            "at": datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds"),
            "operation": self.operation,
            "reason": self.reason,
        }


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class HealthTracker:
    """This process's view of one provider's calls over the last ``window`` calls."""

    window: int = 200
    clock: Callable[[], float] = time.time
    calls: deque[tuple[float, bool]] = field(init=False)
    failures: deque[Failure] = field(default_factory=lambda: deque(maxlen=20))
    total_calls: int = 0
    total_failures: int = 0
    rejected: int = 0

    def __post_init__(self) -> None:
        self.calls = deque(maxlen=self.window)

    def observe(self, latency_ms: float, ok: bool) -> None:
        self.calls.append((latency_ms, ok))
        self.total_calls += 1
        self.total_failures += 0 if ok else 1

    def fail(self, operation: str, reason: str) -> None:
        self.failures.append(Failure(self.clock(), operation, reason[:300]))

    def summary(self) -> dict[str, Any]:
        latencies = [latency for latency, _ in self.calls]
        errors = sum(1 for _, ok in self.calls if not ok)

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        return {
            "window_calls": len(self.calls),
            "error_rate": round(errors / len(self.calls), 4) if self.calls else 0.0,
            "latency_ms": {
                "p50": ms(percentile(latencies, 0.50)),
                "p95": ms(percentile(latencies, 0.95)),
                "p99": ms(percentile(latencies, 0.99)),
            },
            "total_calls": self.total_calls,
            "total_failures": self.total_failures,
            "rejected_calls": self.rejected,
            "recent_failures": [failure.as_document() for failure in self.failures],
        }


# ---------------------------------------------------------------------------------------------------- the wrapper


class _StopAtDeadline(stop_base):
    """Stop retrying when the next attempt could not start and get a useful slice of time before the deadline."""

    def __init__(self, end: float, minimum: float) -> None:
        self._end, self._minimum = end, minimum

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + retry_state.upcoming_sleep + self._minimum >= self._end


def _retryable(error: BaseException) -> bool:
    return isinstance(error, ProviderError) and error.retryable


class ResilientProvider(LenderPhases, ProviderAdapter):
    """One provider behind its breaker, retries, timeouts, bulkhead and rate limit. The aggregator only ever sees
    these. Any exception an adapter lets through that is not a ``ProviderError`` is translated into one here. The
    lender's accept and its phases (``accept``, ``reserve``, ``fund``, ``cancel``) are ``LenderPhases``'."""

    def __init__(
        self,
        inner: ProviderAdapter,
        policy: ResiliencePolicy,
        breaker: AsyncBreaker,
        limiter: RateLimiter,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inner = inner
        self.provider_id = inner.provider_id
        self.kind = inner.kind
        self.policy = policy
        self.breaker = breaker
        self.bulkhead = Bulkhead(policy.max_concurrency)
        self.limiter = limiter
        self.tracker = HealthTracker(policy.health_window, clock)

    @classmethod
    def from_registration(cls, registration: ProviderRegistration, context: AdapterContext) -> Self:
        raise TypeError("a ResilientProvider wraps a built adapter: use providers.registry")

    def capabilities(self) -> Capabilities:
        return self.inner.capabilities()

    def _end(self, budget: float) -> float:
        own = time.monotonic() + budget
        caller = current_deadline()
        return own if caller is None else min(own, caller)

    async def _attempt(self, operation: str, call: Callable[[], Awaitable[T]], end: float, limit: float) -> T:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise ProviderTimeout(f"{self.provider_id}: no time left before the deadline")
        try:
            async with self.bulkhead.slot(self.provider_id, remaining):
                await self.limiter.acquire(self.provider_id, end - time.monotonic())
                async with self.breaker.guard():
                    started = time.perf_counter()
                    ok = False
                    try:
                        async with asyncio.timeout(min(limit, max(end - time.monotonic(), 0.001))):
                            result = await self._translated(operation, call)
                        ok = True
                        return result
                    except TimeoutError:
                        raise ProviderTimeout(
                            f"{self.provider_id}: no complete answer to {operation} in time"
                        ) from None
                    finally:
                        self.tracker.observe((time.perf_counter() - started) * 1000, ok)
        except ProviderError as err:
            if err.counts_as_failure:
                self.tracker.fail(operation, str(err))
            else:
                self.tracker.rejected += 1
            raise
        except asyncio.CancelledError:
            self.tracker.fail(operation, "cancelled by the caller's deadline")
            raise

    async def _translated(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except (ProviderError, TimeoutError, asyncio.CancelledError):
            raise
        except UnicodeError as err:
            # our request could not be encoded (e.g. a header value): the provider was never reached
            raise LocalRequestError(
                f"{self.provider_id}: {operation} request cannot be encoded: {type(err).__name__}"
            ) from err
        except Exception as err:
            raise ProviderError(
                f"{self.provider_id}: adapter raised {type(err).__name__} in {operation}: {err}"
            ) from err

    async def _retried(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        end = self._end(self.policy.quote_budget_seconds)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.quote_attempts)
            | _StopAtDeadline(end, minimum=min(0.01, self.policy.call_timeout_seconds)),
            wait=wait_random_exponential(multiplier=self.policy.retry_base_seconds, max=self.policy.retry_max_seconds),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(operation, call, end, self.policy.call_timeout_seconds)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        """Idempotent: retried on timeouts, connection errors and 5xx, never past the deadline."""
        return await self._retried("quote", lambda: self.inner.quote(request))

    async def status(self, provider_ref: str) -> FundingStatus:
        return await self._retried("status", lambda: self.inner.status(provider_ref))

    async def health(self) -> ProviderHealth:
        snapshot = await self.breaker.snapshot()
        summary = self.tracker.summary()
        return ProviderHealth(
            self.provider_id,
            snapshot.state == CLOSED,
            f"breaker {snapshot.state}",
            extra={
                "breaker": snapshot.state,
                "error_rate": str(summary["error_rate"]),
                "p95_ms": str(summary["latency_ms"]["p95"]),
            },
        )

    async def report(self, probe: bool = False) -> dict[str, Any]:
        """The provider's health document: breaker state and transitions, latency percentiles, error rate, recent
        failures with their reasons; with ``probe``, also the provider's own health answer."""
        snapshot = await self.breaker.snapshot()
        document: dict[str, Any] = {
            "provider_id": self.provider_id,
            "kind": self.kind,
            "breaker": {
                "state": snapshot.state,
                "consecutive_failures": snapshot.failures,
                "trials_in_flight": snapshot.trials_in_flight,
                "opened_at": None
                if snapshot.opened_at is None
                else datetime.fromtimestamp(snapshot.opened_at, UTC).isoformat(timespec="milliseconds"),
                "transitions": [t.as_document() for t in snapshot.transitions],
                "fail_max": self.policy.fail_max,
                "reset_timeout_seconds": self.policy.reset_timeout_seconds,
                "half_open_max_calls": self.policy.half_open_max_calls,
            },
            "bulkhead": {"limit": self.bulkhead.limit, "in_flight": self.bulkhead.in_flight},
            "rate_limit": {"per_second": self.policy.rate_per_second, "burst": self.policy.burst},
        } | self.tracker.summary()
        if probe:
            try:
                async with asyncio.timeout(self.policy.call_timeout_seconds):
                    own = await self.inner.health()
                document["probe"] = {"healthy": own.healthy, "detail": own.detail}
            except Exception as err:
                document["probe"] = {"healthy": False, "detail": f"{type(err).__name__}: {err}"[:300]}
        return document
