"""The lease loop every worker runs (``aggregator.servicing.leased``) and their supervisor (``api.workers``) on the
in-memory leases: an outage of the database ends no worker — a follower's failed ``acquire`` is retried with a
growing pause, a holder whose renewal fails steps down before its lease may expire and leads again once the
database answers — and a worker that fails for another reason is logged with its traceback and started again."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from aggregator.event_destinations import EventDestinations
from aggregator.outbox_memory import InMemoryLeases, InMemoryRelayStore
from aggregator.relay import DEPLOYMENT, LEASE_KIND, OutboxRelay, RelaySettings
from aggregator.servicing.leased import MAX_PAUSE, Leader, pause_after, run_leased
from api.workers import supervise
from providers.secrets import SecretBox
from store.leases import Lease

pytestmark = pytest.mark.unit

TTL = timedelta(seconds=0.3)  # renewals and retries every 0.1 s


def _outage(statement: str) -> OperationalError:
    return OperationalError(statement, {}, Exception("server closed the connection unexpectedly"))


class FlakyLeases(InMemoryLeases):
    """Leases whose database is out of reach while ``down`` is set, as during a PostgreSQL restart."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.failed = {"acquire": 0, "renew": 0}

    async def acquire(self, kind: str, chain_id: int, holder: str, ttl: timedelta) -> Lease | None:
        if self.down:
            self.failed["acquire"] += 1
            raise _outage("SELECT leases")
        return await super().acquire(kind, chain_id, holder, ttl)

    async def renew(self, lease: Lease, ttl: timedelta) -> Lease:
        if self.down:
            self.failed["renew"] += 1
            raise _outage("UPDATE leases")
        return await super().renew(lease, ttl)

    async def release(self, lease: Lease) -> None:
        if self.down:
            raise _outage("UPDATE leases")
        await super().release(lease)


async def _until(condition: Callable[[], bool], within: float = 3.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (state of the loop under test, not an event)
            await asyncio.sleep(0.01)


async def test_a_follower_waits_out_a_database_outage_then_leads() -> None:
    leases, rounds, stop = FlakyLeases(), [], asyncio.Event()
    leases.down = True

    async def round_(leader: Leader) -> None:
        rounds.append(leader.lease.token)

    task = asyncio.create_task(run_leased("keeper", 1, leases, "me", TTL, 0.02, round_, stop))
    await _until(lambda: leases.failed["acquire"] >= 2)
    assert not task.done()  # the old loop ended on the first failed acquire
    assert rounds == []
    leases.down = False
    await _until(lambda: len(rounds) >= 3, within=MAX_PAUSE)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert ("keeper", 1) not in leases.held  # released at the end


async def test_a_holder_whose_renewal_fails_steps_down_before_its_lease_may_expire_and_leads_again() -> None:
    leases, stop = FlakyLeases(), asyncio.Event()
    rounds: list[tuple[float, float]] = []  # (when, the lease's expiry then) per round
    loop = asyncio.get_running_loop()

    async def round_(leader: Leader) -> None:
        rounds.append((loop.time(), leader.lease.expires_at.timestamp()))

    task = asyncio.create_task(run_leased("keeper", 1, leases, "me", TTL, 0.01, round_, stop))
    await _until(lambda: len(rounds) >= 3)
    leases.down = True
    down_at, expiry = loop.time(), leases.held[("keeper", 1)].expires_at
    await _until(lambda: leases.failed["renew"] >= 2 and leases.failed["acquire"] >= 1)
    # stepped down: no round after its lease's last expiry (none in fact after the renewals began to fail)
    during = [when for when, _ in rounds if when > down_at + 0.25]
    assert during == [], "rounds ran while the lease could no longer be renewed"
    assert not task.done()
    # another process took the lease over once it expired; this one follows, and leads again when it is free
    await asyncio.sleep(max(0.0, expiry.timestamp() - time.time()) + 0.01)
    leases.down = False
    taken = await leases.acquire("keeper", 1, "successor", TTL)
    assert taken is not None
    assert taken.token == 2
    await leases.release(taken)
    before = len(rounds)
    await _until(lambda: len(rounds) > before + 2)
    assert leases.held[("keeper", 1)].token == 3
    stop.set()
    await asyncio.wait_for(task, 2)


async def test_a_round_that_fails_unexpectedly_ends_the_worker_and_gives_up_its_lease() -> None:
    leases, stop = FlakyLeases(), asyncio.Event()

    async def round_(leader: Leader) -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        await asyncio.wait_for(run_leased("keeper", 1, leases, "me", TTL, 0.01, round_, stop), 2)
    assert ("keeper", 1) not in leases.held  # a successor need not wait for its expiry


def test_a_follower_pauses_longer_after_each_failure_up_to_a_cap() -> None:
    assert [pause_after(n, 5.0) for n in (1, 2, 3, 4, 5, 6)] == [5.0, 10.0, 20.0, 40.0, MAX_PAUSE, MAX_PAUSE]
    assert pause_after(3, 100.0) == 100.0  # never below the normal pause


async def test_the_outbox_relay_waits_out_a_database_outage() -> None:
    leases = FlakyLeases()
    leases.down = True
    store = InMemoryRelayStore(leases=leases)
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    settings = RelaySettings(ttl=TTL, interval=0.02)
    relay = OutboxRelay(store, EventDestinations(SecretBox(b"k" * 32)), http, settings=settings, holder="relay-b")
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await _until(lambda: leases.failed["acquire"] >= 2)
        assert not task.done()
        leases.down = False
        await _until(lambda: (LEASE_KIND, DEPLOYMENT) in leases.held, within=MAX_PAUSE)
        assert relay.lease is not None
        assert relay.lease.holder == "relay-b"
    finally:
        stop.set()
        await asyncio.wait_for(task, 2)
        await http.aclose()
    assert relay.lease is None
    assert (LEASE_KIND, DEPLOYMENT) not in leases.held


async def test_the_supervisor_starts_a_failed_worker_again_and_logs_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs, stop = [], asyncio.Event()

    async def work() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise KeyError("a bug in one round")
        await stop.wait()

    caplog.set_level(logging.ERROR, logger="api.workers")
    task = asyncio.create_task(supervise("keeper-1", work, stop, first=0.01, most=0.05))
    await _until(lambda: len(runs) == 3)
    assert not task.done()
    faults = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(faults) == 2
    assert all("keeper-1" in r.getMessage() and r.exc_info is not None for r in faults)
    assert isinstance(faults[0].exc_info[1], KeyError)  # type: ignore[index]
    stop.set()
    await asyncio.wait_for(task, 1)
    assert len(runs) == 3


async def test_the_supervisor_starts_a_worker_that_ended_by_itself_again(caplog: pytest.LogCaptureFixture) -> None:
    runs, stop = [], asyncio.Event()

    async def work() -> None:
        runs.append(1)
        if len(runs) == 2:
            stop.set()

    caplog.set_level(logging.ERROR, logger="api.workers")
    await asyncio.wait_for(supervise("indexer-1", work, stop, first=0.01), 1)
    assert len(runs) == 2
    assert "ended by itself" in caplog.records[0].getMessage()
