"""Resilience per provider: a circuit breaker on pybreaker, quote retries with tenacity inside the caller's
deadline, a timeout on every call, a bulkhead, a rate limit, and health (latency percentiles, error rate, breaker
state and its transitions).

Layout: private modules behind these public names, as httpx lays out its package — ``_deadlines`` (the caller's
deadline), ``_breaker_stores`` (breaker state in memory or Redis), ``_breaker`` (``AsyncBreaker``: why pybreaker is
driven explicitly, and the states' rules), ``_limits`` (bulkhead, rate limiters), ``_health`` (the health tracker);
``ResilientProvider`` here puts them around one adapter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Self, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential
from tenacity.stop import stop_base

from compliance.adverse_action import Party
from providers._breaker import AsyncBreaker, BreakerSnapshot, Permit
from providers._breaker_stores import (
    CLOSED,
    HALF_OPEN,
    KEY_PREFIX,
    MAX_TRANSITIONS,
    OPEN,
    BreakerStore,
    MemoryBreakerStore,
    RedisBreakerStore,
    Transition,
)
from providers._deadlines import current_deadline, deadline
from providers._exceptions import DeadlineReached, LocalRequestError, ProviderError, ProviderTimeout
from providers._health import Failure, HealthTracker, percentile
from providers._lender_phases import LenderPhases
from providers._limits import Bulkhead, MemoryRateLimiter, RateLimiter, RedisBuckets, RedisRateLimiter
from providers.base import AdapterContext, ProviderAdapter, ProviderRegistration
from providers.models import Capabilities, Decline, FundingStatus, ProviderHealth, ProviderOffer, QuoteRequest
from providers.policy import ResiliencePolicy

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "KEY_PREFIX",
    "MAX_TRANSITIONS",
    "OPEN",
    "AsyncBreaker",
    "BreakerSnapshot",
    "BreakerStore",
    "Bulkhead",
    "Failure",
    "HealthTracker",
    "MemoryBreakerStore",
    "MemoryRateLimiter",
    "Permit",
    "RateLimiter",
    "RedisBreakerStore",
    "RedisBuckets",
    "RedisRateLimiter",
    "ResilientProvider",
    "Transition",
    "current_deadline",
    "deadline",
    "percentile",
]

T = TypeVar("T")


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
        creditor: Party | None = None,
    ) -> None:
        self.inner = inner
        self._creditor = creditor  # its registration's; None: the adapter's own (``creditor``)
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

    def lending_pool(self) -> tuple[str, str] | None:
        return self.inner.lending_pool()

    def creditor(self) -> Party | None:
        return self._creditor or self.inner.creditor()

    def _end(self, budget: float) -> float:
        own = time.monotonic() + budget
        caller = current_deadline()
        return own if caller is None else min(own, caller)

    async def _attempt(self, operation: str, call: Callable[[], Awaitable[T]], end: float, limit: float) -> T:
        """One attempt: a bulkhead slot, a token, the breaker's permit, the call within its time (``_timed``), the
        breaker's outcome (``AsyncBreaker.settle``: the rules of ``AsyncBreaker.guard``). Written out in one frame
        rather than nested context managers: it runs on every lender call of every request."""
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise DeadlineReached(f"{self.provider_id}: no time left before the deadline")
        bulkhead, breaker = self.bulkhead, self.breaker
        try:
            await bulkhead.enter(self.provider_id, remaining)
            try:
                await self.limiter.acquire(self.provider_id, end - time.monotonic())
                permit = breaker.admit_now() or await breaker.admit()
                try:
                    result = await self._timed(operation, call, end, limit)
                except BaseException as err:
                    await breaker.settle(permit, err)
                    raise
                await breaker.settle(permit, None)
                return result
            finally:
                bulkhead.leave()
        except DeadlineReached:
            self.tracker.cut_short += 1
            raise
        except ProviderError as err:
            if err.counts_as_failure:
                self.tracker.fail(operation, str(err))
            else:
                self.tracker.rejected += 1
            raise
        except asyncio.CancelledError:
            self.tracker.cut_short += 1
            raise

    async def _timed(self, operation: str, call: Callable[[], Awaitable[T]], end: float, limit: float) -> T:
        """The call within the provider's own time limit (``limit``), or within what is left before ``end`` when that
        ends first. Only the provider's own limit makes a timeout the provider's failure: a deadline the caller set
        (``deadline``) ending the call first is ``DeadlineReached``, no outcome for the breaker
        (``AsyncBreaker.guard``). Latency and error rate count the calls the provider was judged on. Any exception an
        adapter lets through that is not a ``ProviderError`` becomes one (a request that cannot be encoded here, a
        ``UnicodeError``, a ``LocalRequestError``)."""
        left = end - time.monotonic()
        # only a deadline the caller set can be blamed (the fan-out's): an accept's end is its own time limit
        cut_by_caller = limit > left and current_deadline() is not None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(min(limit, max(left, 0.001))):
                result = await call()
        except TimeoutError:
            if cut_by_caller:
                raise DeadlineReached(f"{self.provider_id}: no answer to {operation} before the deadline") from None
            self.tracker.observe((time.perf_counter() - started) * 1000, ok=False)
            raise ProviderTimeout(f"{self.provider_id}: no complete answer to {operation} in time") from None
        except ProviderError as err:
            if err.counts_as_failure:
                self.tracker.observe((time.perf_counter() - started) * 1000, ok=False)
            raise
        except asyncio.CancelledError:
            raise  # the caller's: its latency is the caller's wait, not the provider's
        except UnicodeError as err:
            # our request could not be encoded (e.g. a header value): the provider was never reached
            raise LocalRequestError(
                f"{self.provider_id}: {operation} request cannot be encoded: {type(err).__name__}"
            ) from err
        except Exception as err:
            self.tracker.observe((time.perf_counter() - started) * 1000, ok=False)
            raise ProviderError(
                f"{self.provider_id}: adapter raised {type(err).__name__} in {operation}: {err}"
            ) from err
        except BaseException:
            self.tracker.observe((time.perf_counter() - started) * 1000, ok=False)
            raise
        self.tracker.observe((time.perf_counter() - started) * 1000, ok=True)
        return result

    async def _retried(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """The first attempt directly; only a retryable failure enters tenacity, which is handed that failure as its
        own first attempt (so its attempt count, backoff and stop see exactly what they would have run themselves).
        Building ``AsyncRetrying`` and walking its iteration cost ~0.3 ms a call, on every lender call of every
        request, where almost every first attempt succeeds."""
        end = self._end(self.policy.quote_budget_seconds)
        try:
            return await self._attempt(operation, call, end, self.policy.call_timeout_seconds)
        except ProviderError as err:
            if not err.retryable or self.policy.quote_attempts <= 1:
                raise
            first: ProviderError | None = err
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.quote_attempts)
            | _StopAtDeadline(end, minimum=min(0.01, self.policy.call_timeout_seconds)),
            wait=wait_random_exponential(multiplier=self.policy.retry_base_seconds, max=self.policy.retry_max_seconds),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if first is not None:  # the attempt already made: its failure is tenacity's first outcome
                    failed, first = first, None
                    raise failed
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
