"""The resilience wrapper with real asyncio concurrency: async failures count, at most N concurrent trials pass in
half-open, declines never trip, retries stay inside the deadline, accepts are not retried, bulkhead and rate
limit, foreign errors translated, health; the caller's cancellation and deadline are no outcome for the breaker,
the provider's own time limit is."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable

import pybreaker
import pytest

from aggregator.fanout import fan_out
from providers._exceptions import (
    BulkheadFull,
    CircuitOpen,
    DeadlineReached,
    ProviderError,
    ProviderProtocolError,
    ProviderServerError,
    ProviderTimeout,
    RateLimited,
)
from providers.models import Decline, ProviderOffer
from providers.policy import ResiliencePolicy
from providers.resilience import deadline
from tests.unit.providers.fakes import REQUEST, FakeAdapter, offer, wrapped

pytestmark = pytest.mark.unit


async def _until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until ``condition`` holds (bounded, so a bug fails instead of hanging)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_pybreaker_decorator_misses_async_failures_which_the_wrapper_counts() -> None:
    plain = pybreaker.CircuitBreaker(fail_max=2)

    @plain
    async def failing() -> None:
        raise ProviderServerError("down", 503)

    for _ in range(3):
        with pytest.raises(ProviderServerError):
            await failing()
    assert plain.current_state == "closed", "the measured pybreaker behaviour this wrapper exists for"

    adapter = FakeAdapter(lambda n: ProviderServerError("down", 503))
    provider = await wrapped(adapter, ResiliencePolicy(fail_max=2, quote_attempts=1))
    for _ in range(2):
        with pytest.raises(ProviderServerError):
            await provider.quote(REQUEST)
    assert await provider.breaker.state() == "open"
    with pytest.raises(CircuitOpen):
        await provider.quote(REQUEST)
    assert adapter.calls == 2


async def test_half_open_lets_only_the_bounded_trials_through_concurrently() -> None:
    now = [1000.0]
    adapter = FakeAdapter(lambda n: ProviderServerError("down", 503) if n <= 2 else [offer()])
    policy = ResiliencePolicy(fail_max=2, reset_timeout_seconds=5, half_open_max_calls=3, quote_attempts=1)
    provider = await wrapped(adapter, policy, clock=lambda: now[0])
    for _ in range(2):
        with pytest.raises(ProviderServerError):
            await provider.quote(REQUEST)
    now[0] += 5
    adapter.gate = asyncio.Event()
    tasks = [asyncio.create_task(provider.quote(REQUEST)) for _ in range(20)]
    await _until(lambda: sum(t.done() for t in tasks) == 17)
    assert adapter.in_flight == 3
    adapter.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, CircuitOpen) for r in results) == 17
    assert sum(isinstance(r, list) for r in results) == 3
    assert adapter.max_in_flight == 3
    assert await provider.breaker.state() == "closed"
    transitions = [(t.from_state, t.to_state) for t in (await provider.breaker.snapshot()).transitions]
    assert transitions == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]


async def test_a_failed_trial_reopens_and_late_trials_cannot_close_it() -> None:
    now = [1000.0]
    outcomes: list[list[ProviderOffer] | Decline | BaseException | float] = [
        ProviderServerError("down", 503),
        ProviderServerError("down", 503),
        [offer()],
    ]
    adapter = FakeAdapter(lambda n: outcomes[n - 1])
    policy = ResiliencePolicy(fail_max=1, reset_timeout_seconds=5, half_open_max_calls=2, quote_attempts=1)
    provider = await wrapped(adapter, policy, clock=lambda: now[0])
    with pytest.raises(ProviderServerError):
        await provider.quote(REQUEST)
    now[0] += 5
    adapter.gate = asyncio.Event()
    first, second = asyncio.create_task(provider.quote(REQUEST)), asyncio.create_task(provider.quote(REQUEST))
    await _until(lambda: adapter.in_flight == 2)
    adapter.gate.set()
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert isinstance(results[0], ProviderServerError)
    assert isinstance(results[1], list), "the second trial succeeded"
    assert await provider.breaker.state() == "open", "but the first trial's failure had re-opened the breaker"


async def test_declines_never_trip_and_protocol_errors_count_with_their_reason() -> None:
    adapter = FakeAdapter(lambda n: Decline("fake", "no offer"))
    provider = await wrapped(adapter, ResiliencePolicy(fail_max=2, quote_attempts=1))
    for _ in range(10):
        assert isinstance(await provider.quote(REQUEST), Decline)
    assert await provider.breaker.state() == "closed"
    adapter.behaviour = lambda n: ProviderProtocolError("fake: offers.0.rate_bps: must be >= 0")
    with pytest.raises(ProviderProtocolError):
        await provider.quote(REQUEST)
    report = await provider.report()
    assert report["breaker"]["consecutive_failures"] == 1
    assert report["recent_failures"][0]["reason"] == "fake: offers.0.rate_bps: must be >= 0"
    assert report["error_rate"] == pytest.approx(1 / 11, abs=1e-4)
    assert adapter.calls == 11, "a protocol error is not retried"


async def test_foreign_errors_are_translated_once_and_count() -> None:
    adapter = FakeAdapter(lambda n: KeyError("offers"))
    provider = await wrapped(adapter, ResiliencePolicy(fail_max=1, quote_attempts=3))
    with pytest.raises(ProviderError, match="adapter raised KeyError in quote") as caught:
        await provider.quote(REQUEST)
    assert type(caught.value) is ProviderError
    assert adapter.calls == 1
    assert await provider.breaker.state() == "open"


async def test_quote_retries_transient_failures_with_backoff() -> None:
    adapter = FakeAdapter(lambda n: ProviderServerError("down", 503) if n == 1 else [offer()])
    provider = await wrapped(adapter, ResiliencePolicy(quote_attempts=2, retry_base_seconds=0.01))
    answer = await provider.quote(REQUEST)
    assert isinstance(answer, list)
    assert adapter.calls == 2


async def test_retries_never_run_past_the_callers_deadline() -> None:
    adapter = FakeAdapter(lambda n: 5.0)  # hangs far beyond any deadline
    policy = ResiliencePolicy(quote_attempts=5, call_timeout_seconds=0.15, retry_base_seconds=0.01, fail_max=100)
    provider = await wrapped(adapter, policy)
    started = time.monotonic()
    with deadline(0.4), pytest.raises(ProviderTimeout):
        await provider.quote(REQUEST)
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"the 0.4 s deadline was overrun: {elapsed:.2f} s"
    assert 2 <= adapter.calls <= 3, "timeouts are retried, but only while time is left"


async def test_accept_is_one_attempt_with_its_idempotency_key() -> None:
    adapter = FakeAdapter(lambda n: ProviderServerError("down", 503))
    provider = await wrapped(adapter, ResiliencePolicy(quote_attempts=5))
    with pytest.raises(ProviderServerError):
        await provider.accept(offer(), idempotency_key="quote-42")
    assert adapter.accept_keys == ["quote-42"]
    with pytest.raises(ValueError, match="idempotency key"):
        await provider.accept(offer(), idempotency_key="")
    assert adapter.calls == 1


async def test_bulkhead_bounds_concurrency_and_refuses_at_the_deadline() -> None:
    adapter = FakeAdapter(lambda n: 0.2)
    provider = await wrapped(adapter, ResiliencePolicy(max_concurrency=2, quote_attempts=1, fail_max=100))
    with deadline(0.1):
        results = await asyncio.gather(*(provider.quote(REQUEST) for _ in range(5)), return_exceptions=True)
    assert adapter.max_in_flight == 2
    assert sum(isinstance(r, BulkheadFull) for r in results) == 3
    assert await provider.breaker.state() == "closed", "our own refusals are not the provider's failures"


async def test_rate_limit_refuses_when_no_token_comes_in_time() -> None:
    adapter = FakeAdapter(lambda n: [offer()])
    provider = await wrapped(adapter, ResiliencePolicy(rate_per_second=2, burst=3, quote_attempts=1))
    with deadline(0.1):
        results = await asyncio.gather(*(provider.quote(REQUEST) for _ in range(5)), return_exceptions=True)
    assert sum(isinstance(r, list) for r in results) == 3
    assert sum(isinstance(r, RateLimited) for r in results) == 2
    assert adapter.calls == 3


async def test_a_callers_cancellation_is_neither_a_failure_nor_a_success() -> None:
    adapter = FakeAdapter(lambda n: ProviderServerError("down", 503) if n != 2 else 5.0)
    provider = await wrapped(adapter, ResiliencePolicy(fail_max=2, quote_attempts=1))
    with pytest.raises(ProviderServerError):
        await provider.quote(REQUEST)
    task = asyncio.create_task(provider.quote(REQUEST))  # hangs until the caller gives up on it
    await _until(lambda: adapter.in_flight == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    report = await provider.report()
    assert report["breaker"]["state"] == "closed", "the cancellation did not count as a failure"
    assert report["breaker"]["consecutive_failures"] == 1, "nor as a success, which would have reset the count"
    assert report["cut_short_calls"] == 1
    assert report["total_calls"] == 1, "its latency is the caller's wait, not the provider's"
    with pytest.raises(ProviderServerError):
        await provider.quote(REQUEST)
    assert await provider.breaker.state() == "open", "the next real failure is the second in a row"


async def test_a_cancelled_trial_frees_its_slot_for_the_next_trial() -> None:
    now = [1000.0]
    adapter = FakeAdapter(lambda n: ProviderServerError("down", 503) if n == 1 else 5.0 if n == 2 else [offer()])
    policy = ResiliencePolicy(fail_max=1, reset_timeout_seconds=5, half_open_max_calls=1, quote_attempts=1)
    provider = await wrapped(adapter, policy, clock=lambda: now[0])
    with pytest.raises(ProviderServerError):
        await provider.quote(REQUEST)
    now[0] += 5
    trial = asyncio.create_task(provider.quote(REQUEST))
    await _until(lambda: adapter.in_flight == 1)
    with pytest.raises(CircuitOpen, match="trial"):
        await provider.quote(REQUEST)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    await _until(lambda: provider.breaker._store.trials(provider.provider_id) == 0)  # freed by a task of its own
    assert await provider.breaker.state() == "half-open", "a cancelled trial neither closes nor re-opens it"
    assert isinstance(await provider.quote(REQUEST), list)
    assert await provider.breaker.state() == "closed"


async def test_only_the_providers_own_time_limit_makes_a_timeout_its_failure() -> None:
    adapter = FakeAdapter(lambda n: 5.0)  # never answers in time
    policy = ResiliencePolicy(fail_max=1, quote_attempts=1, call_timeout_seconds=0.1)
    provider = await wrapped(adapter, policy)
    for _ in range(3):  # the caller's deadline (0.05 s) ends each call before the provider's limit (0.1 s)
        with deadline(0.05), pytest.raises(DeadlineReached, match="before the deadline"):
            await provider.quote(REQUEST)
    report = await provider.report()
    assert (report["breaker"]["state"], report["breaker"]["consecutive_failures"]) == ("closed", 0)
    assert (report["cut_short_calls"], report["recent_failures"]) == (3, [])
    with deadline(1.0), pytest.raises(ProviderTimeout) as caught:  # now the provider's own limit ends it
        await provider.quote(REQUEST)
    assert not isinstance(caught.value, DeadlineReached)
    assert await provider.breaker.state() == "open", "a provider that does not answer in its own time still trips"


async def test_an_accept_that_outlives_its_own_time_limit_is_the_providers_failure() -> None:
    adapter = FakeAdapter(lambda n: 5.0)
    provider = await wrapped(adapter, ResiliencePolicy(fail_max=1, accept_timeout_seconds=0.05))
    with pytest.raises(ProviderTimeout) as caught:  # its end is its own limit, whatever the bulkhead and limit took
        await provider.accept(offer(), idempotency_key="quote-7")
    assert not isinstance(caught.value, DeadlineReached)
    assert await provider.breaker.state() == "open"


async def test_at_the_fan_out_deadline_a_silent_provider_trips_and_a_slow_platform_trips_nothing() -> None:
    """Through the fan-out as a request makes it: its deadline cancels or cuts the calls still running (outcome
    ``timeout`` or ``failed``, stored with the request either way); only a provider silent past its own time limit,
    which ends before the deadline, is failed by its breaker."""
    late = FakeAdapter(lambda n: 5.0, provider_id="late")  # answers after the deadline: the caller's cut
    silent = FakeAdapter(lambda n: 5.0, provider_id="silent")
    cut = await wrapped(late, ResiliencePolicy(fail_max=1, quote_attempts=1, call_timeout_seconds=1.0))
    timed_out = await wrapped(silent, ResiliencePolicy(fail_max=1, quote_attempts=1, call_timeout_seconds=0.05))
    late_outcome, silent_outcome = await fan_out([cut, timed_out], REQUEST, deadline=0.2)
    assert (late_outcome.provider_id, silent_outcome.provider_id) == ("late", "silent")
    assert late_outcome.outcome in {"timeout", "failed"}, "whichever of the two deadlines ended it first"
    assert (silent_outcome.outcome, silent_outcome.detail) == ("failed", "silent: no complete answer to quote in time")
    assert await cut.breaker.state() == "closed"
    assert await timed_out.breaker.state() == "open"


async def test_health_reports_latency_percentiles_and_error_rate() -> None:
    adapter = FakeAdapter(lambda n: ProviderServerError("down", 503) if n % 4 == 0 else 0.001 * n)
    provider = await wrapped(adapter, ResiliencePolicy(quote_attempts=1, fail_max=100))
    for _ in range(20):
        with contextlib.suppress(ProviderServerError):
            await provider.quote(REQUEST)
    report = await provider.report()
    latency = report["latency_ms"]
    assert 0 < latency["p50"] < latency["p99"], "successful calls slept 1 to 19 ms"
    assert latency["p50"] <= latency["p95"] <= latency["p99"]
    assert report["error_rate"] == 0.25
    assert report["total_calls"] == 20


def _scripted(
    script: list[Callable[[], list[ProviderOffer] | Decline | BaseException]], n: int
) -> list[ProviderOffer] | Decline | BaseException:
    return script[n - 1]()


async def test_the_first_attempt_outside_tenacity_retries_exactly_as_tenacity_around_every_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``_retried`` makes its first attempt directly and hands only a retryable failure to tenacity: on random
    outcome sequences it calls the lender as often, sleeps the same backoff (the same random draws) and ends the
    same way as the former path, tenacity's ``AsyncRetrying`` around every attempt."""
    import random

    from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

    from providers.resilience import ResilientProvider, _retryable, _StopAtDeadline

    async def former(provider: ResilientProvider) -> object:
        policy = provider.policy
        end = provider._end(policy.quote_budget_seconds)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.quote_attempts)
            | _StopAtDeadline(end, minimum=min(0.01, policy.call_timeout_seconds)),
            wait=wait_random_exponential(multiplier=policy.retry_base_seconds, max=policy.retry_max_seconds),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await provider._attempt(
                    "quote", lambda: provider.inner.quote(REQUEST), end, policy.call_timeout_seconds
                )
        raise AssertionError("unreachable")

    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded(seconds: float, result: object = None) -> object:
        slept.append(seconds)
        return await real_sleep(0, result)

    kinds: list[Callable[[], list[ProviderOffer] | Decline | BaseException]] = [
        lambda: [offer()],
        lambda: Decline("fake", "no"),
        lambda: ProviderServerError("down", 503),
        lambda: ProviderTimeout("slow"),
        lambda: ProviderProtocolError("bad body"),
    ]
    draw = random.Random(18)
    retried = 0
    for case in range(60):
        script = [draw.choice(kinds) for _ in range(5)]
        policy = ResiliencePolicy(quote_attempts=draw.randint(1, 4), retry_base_seconds=0.002, fail_max=100)
        seen = []
        for path in ("former", "now"):
            adapter = FakeAdapter(functools.partial(_scripted, script))
            provider = await wrapped(adapter, policy)
            slept.clear()
            random.seed(case)
            monkeypatch.setattr(asyncio, "sleep", recorded)
            try:
                answer: object = await (former(provider) if path == "former" else provider.quote(REQUEST))
            except ProviderError as err:
                answer = err
            finally:
                monkeypatch.setattr(asyncio, "sleep", real_sleep)
            outcome = type(answer).__name__ if not isinstance(answer, list) else "offers"
            seen.append((adapter.calls, outcome, list(slept)))
        assert seen[0] == seen[1], (case, policy.quote_attempts, seen)
        retried += bool(seen[0][2])
    assert retried >= 10, "the cases must include retries after a backoff"


async def test_a_free_bulkhead_slot_is_taken_at_once_and_a_full_bulkhead_refuses_at_the_deadline() -> None:
    """A free slot is taken without arming a timer, even with no time left (as the timer did not fire before the
    free slot was taken); a full bulkhead waits for a slot until the deadline, then refuses."""
    from providers._limits import Bulkhead

    bulkhead = Bulkhead(1)
    async with bulkhead.slot("fake", 0.0):
        assert bulkhead.in_flight == 1
        with pytest.raises(BulkheadFull):
            async with bulkhead.slot("fake", 0.05):
                raise AssertionError("a second slot of one")
    assert bulkhead.in_flight == 0

    async def hold(seconds: float) -> None:
        async with bulkhead.slot("fake", 1.0):
            await asyncio.sleep(seconds)

    holder = asyncio.create_task(hold(0.05))
    await asyncio.sleep(0)
    async with bulkhead.slot("fake", 2.0):  # waits for the holder's slot, within the deadline
        assert holder.done()
