"""The circuit breaker, ``AsyncBreaker``.

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
  cannot close or re-open the breaker late;
* no outcome: a call the caller stopped waiting for (cancelled, or ended by the caller's deadline before the
  provider's own time limit) is neither a failure nor a success; a trial's slot is freed (``guard``).

A call while closed and its success are the common case: a process reads the shared state again only after
``CLOSED_READ_SECONDS`` (or its own failure or transition), and a success is settled without the call waiting for it
(``settle_later``) — with a shared store, one round trip for every provider's state read of the same event-loop turn
(``providers._batching``: a request's lender calls start together), and one for every success of a few milliseconds
(``SETTLE_WINDOW_SECONDS``: a request's answers, and other requests' under load). The store sends this process's
later commands for a breaker (a failure, a transition) only after the successes before them were answered, so the
shared failure count sees this process's outcomes in order; another process sees a success up to that window later,
as if the lender had answered that much later.

With Redis, every transition runs in a worker thread under a Redis lock named after the provider, so processes
never interleave a read-modify-write of the shared state, and the event loop never waits on Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Self

import pybreaker

from providers._breaker_stores import CLOSED, HALF_OPEN, OPEN, BreakerStore, Transition
from providers._exceptions import CircuitOpen, ProviderError
from providers.policy import ResiliencePolicy


@dataclass(frozen=True, slots=True)
class Permit:
    trial: bool


_CALL = Permit(trial=False)

log = logging.getLogger(__name__)

#: how long a process takes a breaker it read as closed in a shared store to stay closed without reading it again: a
#: breaker another process opens is refused here within this (this process's own transitions and failures at once),
#: for one state read per provider and period instead of one per call (a Redis round trip per lender call)
CLOSED_READ_SECONDS = 0.5


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
        self._closed_until = 0.0
        # pybreaker reports its cached state as the old one; with shared storage the state read is the truth
        old = self._read_state or old
        self._read_state = new
        now = self._clock()
        if new == OPEN:
            self._store.set_opened_at(self.name, now)
        self._store.add_transition(self.name, Transition(old, new, now))

    # ------------------------------------------------------------------ admission and outcome

    def admit_now(self) -> Permit | None:
        """A permit without a coroutine while this process takes the breaker for closed (``CLOSED_READ_SECONDS``), else
        None: ``admit`` decides."""
        return _CALL if time.monotonic() < self._closed_until else None

    async def admit(self) -> Permit:
        """A permit to call the provider now, or ``CircuitOpen``."""
        if time.monotonic() < self._closed_until:
            return _CALL
        if await self._store.peek_state(self.name) == CLOSED:
            self._closed_until = time.monotonic() + CLOSED_READ_SECONDS
            return _CALL
        permit = await self._store.run(self.name, self._admit)
        if permit is None:
            raise CircuitOpen(f"{self.name}: circuit {self._last_refusal}")
        return permit

    _last_refusal = "open"

    _read_state: str | None = None

    #: until when (monotonic) this process takes the shared state for closed without reading it again
    _closed_until = 0.0

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
        if failed:
            self._closed_until = 0.0  # the next admission reads the state again
        if not permit.trial:
            if not failed:  # the common case: the store settles it with others, without holding the caller up
                settling = self._store.settle_later(self.name)
                if settling is not None:
                    settling.add_done_callback(self._settled)
                    return
            state = await self._store.peek_state(self.name)
            if state is not None and state != CLOSED:
                self._closed_until = 0.0
                return  # a non-trial outcome outside closed says nothing (see _record)
        await self._store.run(self.name, lambda: self._record(permit, failed))

    def _settled(self, settling: asyncio.Future[str | None]) -> None:
        """A success settled by the store (``settle_later``): the state read closed, nothing more to do; another
        state, the success says nothing (``_record``) and the next admission reads the state again; none (no state
        yet, or Redis failed meanwhile), recorded through ``run`` as an awaited success would have been."""
        if settling.cancelled():
            return
        if settling.exception() is not None:
            log.warning("%s: a success could not be recorded: %r", self.name, settling.exception())
            return
        state = settling.result()
        if state == CLOSED:
            return
        if state is not None:
            self._closed_until = 0.0
            return
        _background(self._store.run(self.name, lambda: self._record(_CALL, False)))

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

    async def release(self, permit: Permit) -> None:
        """No outcome: the call says nothing about the provider (the caller stopped waiting, or an error of ours). The
        failure counter is left as it was; a trial's slot is freed for the next trial."""
        if permit.trial:
            await self._store.run(self.name, lambda: self._store.release_trial(self.name))

    async def settle(self, permit: Permit, error: BaseException | None) -> None:
        """Record what a call made under ``permit`` says, by how it ended (``error``: None for a normal end), by the
        rules of ``guard``."""
        if error is None:
            await self.record(permit, failed=False)
        elif isinstance(error, asyncio.CancelledError):
            if permit.trial:
                _background(self.release(permit))
        elif isinstance(error, ProviderError) and not error.counts_as_failure:
            await self.release(permit)
        else:
            await self.record(permit, failed=True)

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Admit, run the block, record its outcome: a ``ProviderError`` that counts, or any other exception, is a
        failure; a normal exit a success. The caller's cancellation and a ``ProviderError`` that does not count
        (``DeadlineReached``, ``ProviderRejected``, ``LocalRequestError``) record no outcome: a call the fan-out's
        deadline ended says how busy this platform was, not how the provider did — counted, a busy platform's
        processes (sharing the breaker through Redis) would open it on a healthy provider. A provider that really
        does not answer still fails by its own time limit, which ends before the fan-out's deadline.
        (``ResilientProvider._attempt`` applies the same rules through ``admit`` and ``settle``.)"""
        permit = await self.admit()
        try:
            yield
        except BaseException as err:
            await self.settle(permit, err)
            raise
        await self.settle(permit, None)


_pending: set[asyncio.Task[None]] = set()


def _background(work: Awaitable[None]) -> None:
    """Work the caller does not wait for (a trial's slot freed after the caller was cancelled; a success recorded
    after its settle read no state): an error is logged, not left in a task nobody reads."""

    async def run() -> None:
        try:
            await work
        except Exception:
            log.warning("breaker work in the background failed", exc_info=True)

    task = asyncio.ensure_future(run())
    _pending.add(task)
    task.add_done_callback(_pending.discard)
