"""Provider rate limits and breaker state that degrade rather than fail: shared through Redis by every process
while Redis answers; when it errors, this process's own state (the same rate and burst; the breaker's last state
this process saw) until Redis answers again, tried every few seconds (``risk.shared_state.SharedStateHealth``: the
change logged once each way; ``/readyz`` reports Redis ``degraded`` meanwhile). While degraded a limit and a breaker
hold per process, not across them; once Redis answers they are shared again (a restarted, empty Redis starts every
breaker closed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import pybreaker
from redis.exceptions import LockError

from providers.resilience import CLOSED, BreakerStore, MemoryBreakerStore, RateLimiter, Transition
from risk.shared_state import SHARED_STATE_ERRORS, SharedStateHealth

T = TypeVar("T")
log = logging.getLogger(__name__)


class DegradableRateLimiter:
    """``shared`` (a ``RedisRateLimiter``) while Redis answers, else ``local`` (a ``MemoryRateLimiter``)."""

    def __init__(self, shared: RateLimiter, local: RateLimiter, health: SharedStateHealth) -> None:
        self.shared, self.local, self.health = shared, local, health

    async def acquire(self, name: str, remaining: float) -> None:
        if self.health.worth_trying():
            try:
                await self.shared.acquire(name, remaining)
            except SHARED_STATE_ERRORS as err:
                self.health.failed(err)
            else:
                self.health.answered()
                return
        await self.local.acquire(name, remaining)


class _Either:
    """Calls to the shared side while it answers (or is worth trying again), else to the local side."""

    def __init__(self, health: SharedStateHealth) -> None:
        self.health = health

    def either(self, shared: Callable[[], T], local: Callable[[], T]) -> T:
        if self.health.worth_trying():
            try:
                result = shared()
            except SHARED_STATE_ERRORS as err:
                self.health.failed(err)
            else:
                self.health.answered()
                return result
        return local()


class DegradableStorage(_Either, pybreaker.CircuitBreakerStorage):
    """One breaker's pybreaker storage: Redis while it answers, else this process's memory. Every write goes to the
    memory too, so the local breaker a Redis outage falls back on starts from the last state this process saw."""

    def __init__(
        self,
        shared: Callable[[], pybreaker.CircuitBreakerStorage],
        local: pybreaker.CircuitBreakerStorage,
        health: SharedStateHealth,
    ) -> None:
        _Either.__init__(self, health)
        pybreaker.CircuitBreakerStorage.__init__(self, "degradable")
        self._make_shared, self.local = shared, local
        self._shared: pybreaker.CircuitBreakerStorage | None = None

    def _on_shared(self) -> pybreaker.CircuitBreakerStorage:
        if self._shared is None:  # created on first use: Redis may be down when the breaker is built
            self._shared = self._make_shared()
        return self._shared

    @property
    def state(self) -> str:
        return self.either(lambda: str(self._on_shared().state), lambda: str(self.local.state))

    @state.setter
    def state(self, state: str) -> None:
        self.local.state = state

        def write() -> None:
            self._on_shared().state = state

        self.either(write, lambda: None)

    def increment_counter(self) -> None:
        self.local.increment_counter()
        self.either(lambda: self._on_shared().increment_counter(), lambda: None)

    def reset_counter(self) -> None:
        self.local.reset_counter()
        self.either(lambda: self._on_shared().reset_counter(), lambda: None)

    def increment_success_counter(self) -> None:
        self.local.increment_success_counter()
        self.either(lambda: self._on_shared().increment_success_counter(), lambda: None)

    def reset_success_counter(self) -> None:
        self.local.reset_success_counter()
        self.either(lambda: self._on_shared().reset_success_counter(), lambda: None)

    @property
    def counter(self) -> int:
        return self.either(lambda: int(self._on_shared().counter), lambda: int(self.local.counter))

    @property
    def success_counter(self) -> int:
        return self.either(lambda: int(self._on_shared().success_counter), lambda: int(self.local.success_counter))

    @property
    def opened_at(self) -> datetime | None:
        return self.either(lambda: self._on_shared().opened_at, lambda: self.local.opened_at)

    @opened_at.setter
    def opened_at(self, now: datetime) -> None:
        self.local.opened_at = now

        def write() -> None:
            self._on_shared().opened_at = now

        self.either(write, lambda: None)


class DegradableBreakerStore(_Either):
    """Breaker state in ``shared`` (a ``RedisBreakerStore``) while Redis answers, else in ``local`` (this process's
    memory, which every write also reaches). ``health`` is reported by ``/readyz`` through its own Redis ping."""

    def __init__(self, shared: BreakerStore, local: MemoryBreakerStore, health: SharedStateHealth) -> None:
        super().__init__(health)
        self.shared, self.local = shared, local
        self._storages: dict[str, DegradableStorage] = {}
        #: trial slots ``local`` granted while Redis was down and not released yet, by breaker: each is released there
        self._local_trials: dict[str, int] = {}

    def storage(self, name: str) -> pybreaker.CircuitBreakerStorage:
        storage = DegradableStorage(lambda: self.shared.storage(name), self.local.storage(name), self.health)
        self._storages[name] = storage
        return storage

    async def run(self, name: str, operation: Callable[[], T]) -> T:
        if self.health.worth_trying():
            done: list[T] = []

            def once() -> T:  # a Redis error after the operation ran (releasing the lock) must not run it twice
                done.append(operation())
                return done[0]

            try:
                result = await self.shared.run(name, once)
            except LockError as err:  # Redis answered: another process held the breaker's lock past the wait
                if done:
                    return done[0]  # its release failed: the lock had expired meanwhile
                log.warning(
                    "breaker %s: its Redis lock stayed busy (%s); this transition is this process's own", name, err
                )
            except SHARED_STATE_ERRORS as err:
                self.health.failed(err)
                if done:
                    return done[0]
            else:
                self.health.answered()
                return result
        return await self.local.run(name, operation)

    async def peek_state(self, name: str) -> str | None:
        if not self.health.worth_trying():
            return None  # the memory store has no fast path: the caller goes through run()
        try:
            state = await self.shared.peek_state(name)
        except SHARED_STATE_ERRORS as err:
            self.health.failed(err)
            return None
        self.health.answered()
        return state

    def settle_later(self, name: str) -> asyncio.Future[str | None] | None:
        """The shared store's deferred success (``RedisBreakerStore.settle_later``) while Redis answers; its Redis
        error makes the state read None (the caller then records through ``run``: this process's memory) and marks
        Redis down, as an awaited settle did. None while Redis is down: the caller records through ``run``."""
        if not self.health.worth_trying():
            return None  # the memory store has no fast path: the caller goes through run()
        shared = self.shared.settle_later(name)
        if shared is None:
            return None
        answer: asyncio.Future[str | None] = shared.get_loop().create_future()

        def settled(done: asyncio.Future[str | None]) -> None:
            if answer.done():
                return
            if done.cancelled():
                answer.cancel()
                return
            err = done.exception()
            if isinstance(err, SHARED_STATE_ERRORS):
                self.health.failed(err)
                answer.set_result(None)
            elif err is not None:
                answer.set_exception(err)
            else:
                self.health.answered()
                state = done.result()
                storage = self._storages.get(name)
                if state == CLOSED and storage is not None:
                    storage.local.reset_counter()
                answer.set_result(state)

        shared.add_done_callback(settled)
        return answer

    def take_trial(self, name: str, limit: int, ttl: float) -> bool:
        def locally() -> bool:
            taken = self.local.take_trial(name, limit, ttl)
            if taken:
                self._local_trials[name] = self._local_trials.get(name, 0) + 1
            return taken

        return self.either(lambda: self.shared.take_trial(name, limit, ttl), locally)

    def release_trial(self, name: str) -> None:
        """Released in the store that granted the slot: a slot taken in memory while Redis was down, released in
        Redis once it answered again, stayed taken in memory for good, and the next outage's breaker never left
        half-open ("every trial call is taken")."""
        if self._local_trials.get(name, 0) > 0:
            self._local_trials[name] -= 1
            self.local.release_trial(name)
            return
        self.either(lambda: self.shared.release_trial(name), lambda: self.local.release_trial(name))

    def trials(self, name: str) -> int:
        return self.either(lambda: self.shared.trials(name), lambda: self.local.trials(name))

    def opened_at(self, name: str) -> float | None:
        return self.either(lambda: self.shared.opened_at(name), lambda: self.local.opened_at(name))

    def set_opened_at(self, name: str, at: float) -> None:
        self.local.set_opened_at(name, at)
        self.either(lambda: self.shared.set_opened_at(name, at), lambda: None)

    def add_transition(self, name: str, transition: Transition) -> None:
        self.local.add_transition(name, transition)
        self.either(lambda: self.shared.add_transition(name, transition), lambda: None)

    def transitions(self, name: str) -> list[Transition]:
        return self.either(lambda: self.shared.transitions(name), lambda: self.local.transitions(name))

    async def aclose(self) -> None:
        close = getattr(self.shared, "aclose", None)
        if close is not None:
            await close()
