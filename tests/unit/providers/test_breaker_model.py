"""Model-based test of the breaker wrapper: any interleaving of call starts, call ends (success or failure, in any
order, several in flight at once — so concurrent half-open calls too) and clock steps keeps ``AsyncBreaker`` equal
to a small reference model: closed → open after ``fail_max`` consecutive failures; open refuses until
``reset_timeout``; half-open admits at most ``half_open_max_calls`` trials in flight; a trial failure re-opens,
``success_threshold`` trial successes close; outcomes of calls that are not trials of the current state are
ignored."""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from providers._exceptions import CircuitOpen
from providers.policy import ResiliencePolicy
from providers.resilience import AsyncBreaker, MemoryBreakerStore, Permit

pytestmark = pytest.mark.unit

RESET = 10.0


@dataclass
class Call:
    permit: Permit
    trial: bool


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.now = 1_700_000_000.0
        self.calls: list[Call] = []

    def teardown(self) -> None:
        self.loop.close()

    @initialize(fail_max=st.integers(1, 4), half_open_max=st.integers(1, 3), success_threshold=st.integers(1, 3))
    def start(self, fail_max: int, half_open_max: int, success_threshold: int) -> None:
        self.policy = ResiliencePolicy(
            fail_max=fail_max,
            reset_timeout_seconds=RESET,
            half_open_max_calls=half_open_max,
            success_threshold=success_threshold,
        )
        self.breaker = self.loop.run_until_complete(
            AsyncBreaker("model", self.policy, MemoryBreakerStore(), clock=lambda: self.now).start()
        )
        self.state, self.failures, self.successes, self.trials = "closed", 0, 0, 0
        self.opened_at: float | None = None

    # ------------------------------------------------------------------ the model's transitions

    def _open(self) -> None:
        self.state, self.opened_at, self.successes = "open", self.now, 0

    def _close(self) -> None:
        self.state, self.failures, self.successes = "closed", 0, 0

    @rule()
    def start_call(self) -> None:
        if self.state == "open" and self.opened_at is not None and self.now >= self.opened_at + RESET:
            self.state, self.successes = "half-open", 0
        expected: bool | None  # None: refused; else whether the call is a trial
        if self.state == "open":
            expected = None
        elif self.state == "half-open":
            expected = True if self.trials < self.policy.half_open_max_calls else None
        else:
            expected = False
        try:
            permit = self.loop.run_until_complete(self.breaker.admit())
        except CircuitOpen:
            assert expected is None, f"refused, but the model admits (state {self.state}, trials {self.trials})"
            return
        assert expected is not None, f"admitted, but the model refuses (state {self.state}, trials {self.trials})"
        assert permit.trial is expected
        self.trials += 1 if permit.trial else 0
        self.calls.append(Call(permit, permit.trial))

    @precondition(lambda self: bool(self.calls))
    @rule(which=st.integers(0, 50), failed=st.booleans())
    def finish_call(self, which: int, failed: bool) -> None:
        call = self.calls.pop(which % len(self.calls))
        self.loop.run_until_complete(self.breaker.record(call.permit, failed))
        if call.trial:
            self.trials -= 1
        if self.state == "closed":
            if failed:
                self.failures += 1
                if self.failures >= self.policy.fail_max:
                    self._open()
            else:
                self.failures = 0
        elif self.state == "half-open" and call.trial:
            if failed:
                self._open()
            else:
                self.successes += 1
                if self.successes >= self.policy.success_threshold:
                    self._close()

    @rule(seconds=st.sampled_from([0.5, 3.0, RESET - 0.001, RESET, 25.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    # ------------------------------------------------------------------ what must always hold

    @invariant()
    def agrees_with_the_model(self) -> None:
        snapshot = self.loop.run_until_complete(self.breaker.snapshot())
        assert snapshot.state == self.state
        assert snapshot.trials_in_flight == self.trials <= self.policy.half_open_max_calls
        if self.state == "closed":
            assert snapshot.failures == self.failures
        if self.state == "open":
            assert snapshot.opened_at == self.opened_at

    @invariant()
    def transitions_chain_with_timestamps(self) -> None:
        transitions = self.loop.run_until_complete(self.breaker.snapshot()).transitions
        for earlier, later in itertools.pairwise(transitions):
            assert earlier.to_state == later.from_state
            assert earlier.at <= later.at
        if transitions:
            assert transitions[-1].to_state == self.state


# 150 runs of 40 steps by default (about a second); the long run sets CREDITMESH_BREAKER_EXAMPLES=2500 (100,000 steps)
EXAMPLES = int(os.environ.get("CREDITMESH_BREAKER_EXAMPLES", "150"))
BreakerMachine.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=40, deadline=None)
test_breaker_agrees_with_its_model = BreakerMachine.TestCase
