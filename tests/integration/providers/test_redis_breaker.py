"""Breaker state in Redis: two processes see one breaker, the half-open trial limit holds across them, every Redis
call runs off the event loop; the Redis token bucket is one limit for every client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio

from api.settings import HttpLenderSetting, Settings
from providers._exceptions import CircuitOpen, ProviderUnavailable, RateLimited
from providers.assembly import build_providers
from providers.policy import ResiliencePolicy
from providers.resilience import AsyncBreaker, RedisBreakerStore, RedisRateLimiter
from risk.redis_clients import async_redis, sync_redis
from store.db import Database
from tests.integration.providers.breaker_worker import POLICY
from tests.integration.providers.support import SECRET
from tests.unit.providers.fakes import REQUEST

pytestmark = pytest.mark.integration


def _other_process(redis_url: str, name: str, *command: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.providers.breaker_worker", redis_url, name, *command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


async def test_two_processes_share_one_breaker_and_its_half_open_limit(redis_url: str) -> None:
    name = f"shared-{uuid.uuid4().hex[:8]}"
    store = RedisBreakerStore.from_url(redis_url)
    try:
        breaker = await AsyncBreaker(name, POLICY, store).start()
        for _ in range(POLICY.fail_max):
            await breaker.record(await breaker.admit(), failed=True)
        assert await breaker.state() == "open"

        seen = await asyncio.to_thread(_other_process, redis_url, name, "state")
        assert seen["state"] == "open"
        assert seen["failures"] == POLICY.fail_max
        assert seen["transitions"] == [["closed", "open"]]

        await asyncio.sleep(POLICY.reset_timeout_seconds + 0.05)
        mine = await breaker.admit()  # this process holds one of the two trial slots
        assert mine.trial
        other = await asyncio.to_thread(_other_process, redis_url, name, "trials", "5")
        assert other["granted"] == POLICY.half_open_max_calls - 1, "the limit counts this process's trial too"
        assert other["state_while_trying"] == "half-open"
        assert other["state"] == "open", "the other process's failed trial re-opened the shared breaker"

        await breaker.record(mine, failed=False)  # a late success of an earlier trial does not close it
        snapshot = await breaker.snapshot()
        assert snapshot.state == "open"
        assert snapshot.trials_in_flight == 0
        assert [(t.from_state, t.to_state) for t in snapshot.transitions] == [
            ("closed", "open"),
            ("open", "half-open"),
            ("half-open", "open"),
        ]
    finally:
        await store.aclose()


async def test_redis_breaker_work_runs_off_the_event_loop_thread(redis_url: str) -> None:
    store = RedisBreakerStore.from_url(redis_url)
    try:
        worker = await store.run("thread-check", threading.get_ident)
        assert worker != threading.get_ident()
    finally:
        await store.aclose()


async def test_the_redis_rate_limit_is_one_bucket_for_every_client(redis_url: str) -> None:
    first, second = redis.asyncio.Redis.from_url(redis_url), redis.asyncio.Redis.from_url(redis_url)
    name = f"bucket-{uuid.uuid4().hex[:8]}"
    limiters = [RedisRateLimiter(first, rate=1, burst=3), RedisRateLimiter(second, rate=1, burst=3)]
    outcomes = []
    for index in range(6):
        try:
            await limiters[index % 2].acquire(name, remaining=0.05)
            outcomes.append("ok")
        except RateLimited:
            outcomes.append("limited")
    assert outcomes == ["ok", "ok", "ok", "limited", "limited", "limited"]
    await first.aclose()
    await second.aclose()


async def test_platforms_built_on_one_redis_share_each_providers_breaker(redis_url: str, tmp_path: Path) -> None:
    """Two registries as two API processes build them (``build_providers`` with ``CREDITMESH_REDIS_URL``): a lender
    that fails through one is open in the other, with the per-provider policy from the settings."""
    provider_id = f"down-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        redis_url=redis_url,
        http_lenders=[HttpLenderSetting(provider_id=provider_id, base_url="http://127.0.0.1:9", secret=SECRET)],
        provider_policies={provider_id: ResiliencePolicy(fail_max=2, quote_attempts=1)},
        fanout_deadline_seconds=0.5,
    )
    database = Database(f"sqlite:///{tmp_path / 'redis-platform.db'}")
    database.migrate()
    async with httpx.AsyncClient() as http:
        first = await build_providers(settings, {}, database, http, redis_url)
        second = await build_providers(settings, {}, database, http, redis_url)
        try:
            failing = first.get_provider(provider_id)
            assert failing.policy.quote_budget_seconds == 0.5, "the fan-out deadline is the quote budget"
            for _ in range(2):
                with pytest.raises(ProviderUnavailable):
                    await failing.quote(REQUEST)
            other = second.get_provider(provider_id)
            assert await other.breaker.state() == "open"
            with pytest.raises(CircuitOpen):
                await other.quote(REQUEST)
            health = await second.health(provider_id)
            assert [(t["from"], t["to"]) for t in health["breaker"]["transitions"]] == [("closed", "open")]
        finally:
            await first.close()
            await second.close()
    database.dispose()


async def test_an_operation_that_outlives_the_breaker_lock_still_answers(redis_url: str) -> None:
    """A state change ran in a worker thread starved for longer than the lock's timeout (a loaded machine): the lock
    expired under it, its release raised redis-py's LockNotOwnedError, and the call that changed the state failed with
    it — a Redis "error" the change had not had. The change is done: its answer stands, the expiry is logged."""
    store = RedisBreakerStore(sync_redis(redis_url), async_redis(redis_url), lock_timeout=0.2)
    name = f"starved-{uuid.uuid4().hex[:8]}"

    def slow() -> str:
        threading.Event().wait(0.5)  # longer than the lock lives
        return "changed"

    assert await store.run(name, slow) == "changed"
    assert await store.run(name, lambda: "again") == "again", "the lock is free for the next change"
