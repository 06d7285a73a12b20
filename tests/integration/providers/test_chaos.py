"""Chaos over real HTTP: ten simulated lenders in their own process, three failing in different ways (a 5 s hang,
503s, malformed JSON). Every fan-out under a 2 s deadline returns the seven healthy lenders' offers (20 ms each)
and excludes the one answering after the deadline; the failing lenders' breakers (a hang failed by the lender's own
time limit, which ends before the deadline) open at their threshold, let only the bounded trials through in
half-open, and close when the lender recovers. Bodies that break the protocol in
other ways are refused with the reason recorded and counted as that lender's failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from aggregator.fanout import fan_out
from providers._exceptions import CircuitOpen
from providers.base import ProviderAdapter
from providers.policy import ResiliencePolicy
from providers.sim.fleet import FailureSpec, LatencySpec, SimLender
from tests.integration.providers.support import SECRET, http_registry, lender_requests, set_failure, sim_server
from tests.unit.providers.fakes import REQUEST

pytestmark = pytest.mark.integration

HEALTHY = [f"healthy-{i}" for i in range(7)]
BROKEN = {"broken-hang": "timeout", "broken-503": "error_5xx", "broken-json": "malformed_json"}
LYING = {"lies-schema": "schema_violation", "lies-negative": "negative_rate", "lies-expired": "expired_offer"}
# 100 times a healthy lender's answer: a worker process stalled for a second on a loaded machine (its collector, the
# other worker's processes) still gets every healthy offer in
DEADLINE = 2.0
# each lender's own time limit (1 s) ends before the deadline: a hang fails the lender by it, not by the deadline, and
# it sets a round's length; an open breaker waits two rounds before its trials, so the next round finds it open
POLICY = ResiliencePolicy(
    fail_max=3,
    reset_timeout_seconds=2.0,
    half_open_max_calls=2,
    quote_attempts=1,
    quote_budget_seconds=1.9,
    call_timeout_seconds=1.0,
)


def _lender(lender_id: str, mode: str = "none", **failure: float) -> SimLender:
    return SimLender(
        lender_id=lender_id,
        secret=SECRET,
        latency=LatencySpec(distribution="fixed", ms=20),
        failure=FailureSpec.model_validate({"mode": mode, "hang_seconds": 5.0} | failure),
    )


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    lenders = [_lender(i) for i in HEALTHY]
    lenders += [_lender(i, mode) for i, mode in (BROKEN | LYING).items()]
    lenders += [
        _lender("slow-body", "slow_body", slow_body_seconds=5.0),
        _lender("flapping", "flapping", period_seconds=0.2),
    ]
    with sim_server(lenders, Path(tmp_path_factory.mktemp("sim"))) as base:
        yield base


async def _fan_out_round(registry_adapters: Sequence[ProviderAdapter], expect_broken: str) -> None:
    started = time.monotonic()
    outcomes = {o.provider_id: o for o in await fan_out(registry_adapters, REQUEST, DEADLINE)}
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + 1.0, f"the fan-out overran its {DEADLINE} s deadline: {elapsed:.2f} s"
    assert {pid for pid, o in outcomes.items() if o.outcome == "offered"} == set(HEALTHY), {
        pid: (o.outcome, o.detail) for pid, o in outcomes.items()
    }
    assert all(len(outcomes[pid].offers) == 1 for pid in HEALTHY)
    for pid in BROKEN:
        assert outcomes[pid].outcome in ("failed", "timeout"), outcomes[pid]
        assert not outcomes[pid].offers
        if expect_broken == "circuit open":
            assert "circuit open" in outcomes[pid].detail


async def test_fan_out_survives_three_failing_lenders_and_their_breakers_cycle(sim: str) -> None:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100)) as http:
        registry = await http_registry(sim, [*HEALTHY, *BROKEN], http, POLICY)
        adapters = registry.adapters()
        for _ in range(POLICY.fail_max):
            await _fan_out_round(adapters, "calling")
        for pid in BROKEN:
            assert await registry.get_provider(pid).breaker.state() == "open", pid
            assert lender_requests(sim, pid)["quote"] == POLICY.fail_max, "opened exactly at the threshold"
        for pid in HEALTHY:
            assert await registry.get_provider(pid).breaker.state() == "closed"

        await _fan_out_round(adapters, "circuit open")
        for pid in BROKEN:
            assert lender_requests(sim, pid)["quote"] == POLICY.fail_max, "an open breaker sends nothing"

        # half-open: ten concurrent calls, only the bounded trials reach the lender, and a failed trial re-opens
        await asyncio.sleep(POLICY.reset_timeout_seconds + 0.1)
        flaky = registry.get_provider("broken-503")
        results = await asyncio.gather(*(flaky.quote(REQUEST) for _ in range(10)), return_exceptions=True)
        assert sum(isinstance(r, CircuitOpen) for r in results) == 10 - POLICY.half_open_max_calls
        assert lender_requests(sim, "broken-503")["quote"] == POLICY.fail_max + POLICY.half_open_max_calls
        assert await flaky.breaker.state() == "open"

        # recovery: the lender heals, the next trial closes the breaker, its offers come back
        set_failure(sim, "broken-503", {"mode": "none"})
        await asyncio.sleep(POLICY.reset_timeout_seconds + 0.1)
        outcomes = {o.provider_id: o for o in await fan_out(adapters, REQUEST, DEADLINE)}
        assert outcomes["broken-503"].outcome == "offered"
        assert await flaky.breaker.state() == "closed"
        health = await registry.health("broken-503")
        steps = [(t["from"], t["to"]) for t in health["breaker"]["transitions"]]
        assert steps == [
            ("closed", "open"),
            ("open", "half-open"),
            ("half-open", "open"),
            ("open", "half-open"),
            ("half-open", "closed"),
        ]
        stamps = [t["at"] for t in health["breaker"]["transitions"]]
        assert stamps == sorted(stamps)
        assert "HTTP 503" in health["recent_failures"][0]["reason"]
        malformed = await registry.health("broken-json")
        assert "Invalid JSON" in malformed["recent_failures"][0]["reason"]
        assert malformed["error_rate"] == 1.0


async def test_protocol_violations_are_refused_with_the_reason_and_counted(sim: str) -> None:
    async with httpx.AsyncClient() as http:
        registry = await http_registry(sim, [*LYING, "slow-body"], http, POLICY)
        outcomes = {o.provider_id: o for o in await fan_out(registry.adapters(), REQUEST, DEADLINE)}
        expected = {
            "lies-schema": "offers.0.offer_ref: Field required",
            "lies-negative": "offers.0.rate_bps: Input should be greater than or equal to 0",
            "lies-expired": "expired at",
        }
        for pid, reason in expected.items():
            assert outcomes[pid].outcome == "failed"
            assert reason in outcomes[pid].detail
            health = await registry.health(pid)
            assert reason in health["recent_failures"][0]["reason"]
            assert health["breaker"]["consecutive_failures"] == 1
        assert outcomes["slow-body"].outcome == "failed", "a trickling body is cut by the lender's own time limit"
        assert (await registry.health("slow-body"))["breaker"]["consecutive_failures"] == 1


async def test_a_flapping_lender_alternates_between_offers_and_failures(sim: str) -> None:
    async with httpx.AsyncClient() as http:
        registry = await http_registry(sim, ["flapping"], http, ResiliencePolicy(fail_max=100, quote_attempts=1))
        provider = registry.get_provider("flapping")
        results = []
        for _ in range(8):
            results.append(await asyncio.gather(provider.quote(REQUEST), return_exceptions=True))
            await asyncio.sleep(0.1)
        kinds = {type(result[0]).__name__ for result in results}
        assert kinds == {"list", "ProviderServerError"}
