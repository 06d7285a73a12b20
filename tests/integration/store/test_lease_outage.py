"""Leased workers across a real PostgreSQL restart: two processes' (two engines') lease loops and an outbox relay
keep running while the database is down — the follower's ``acquire`` and the holder's renewal fail for longer than
the lease's time to live — and once it is back one of them leads again and its fenced writes go through; the lease
is released at the end."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from aggregator.event_destinations import EventDestinations
from aggregator.relay import OutboxRelay, RelaySettings
from aggregator.servicing.leased import Leader, run_leased
from providers.secrets import SecretBox
from store.db import Database
from store.leases import LeaseRow, SqlLeaseStore
from store.relay import SqlRelayStore
from tests.chaos.support import RestartablePostgres

pytestmark = pytest.mark.integration

TTL = timedelta(seconds=1.5)


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[RestartablePostgres]:
    server = RestartablePostgres(tmp_path / "pg")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_leased_workers_outlive_a_postgres_restart(postgres: RestartablePostgres) -> None:
    one, two = Database(postgres.url), Database(postgres.url)
    one.migrate()
    written: list[tuple[str, int]] = []  # (holder, token) of each committed fenced write
    lock = threading.Lock()

    def fenced_write(database: Database, leader: Leader) -> None:
        with database.unit_of_work() as uow:
            leader.leases.fence(uow.session, leader.lease)
            marker = uow.session.get(LeaseRow, ("outage-marker", 0))
            if marker is None:
                at = leader.lease.expires_at
                marker = LeaseRow(kind="outage-marker", chain_id=0, token=0, expires_at=at, updated_at=at)
                uow.session.add(marker)
            marker.holder = leader.lease.holder
            uow.commit()
        with lock:
            written.append((leader.lease.holder, leader.lease.token))

    def worker(database: Database, holder: str, stop: asyncio.Event) -> asyncio.Task[None]:
        async def round_(leader: Leader) -> None:
            await asyncio.to_thread(fenced_write, database, leader)

        leases = SqlLeaseStore(database.sessions)
        return asyncio.create_task(run_leased("keeper", 7, leases, holder, TTL, 0.05, round_, stop))

    destinations = EventDestinations(SecretBox(b"k" * 32))
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    relay = OutboxRelay(
        SqlRelayStore(two), destinations, http, settings=RelaySettings(ttl=TTL, interval=0.05), holder="relay"
    )
    stop = asyncio.Event()
    tasks = [worker(one, "process-a", stop), worker(two, "process-b", stop), asyncio.create_task(relay.run(stop))]
    try:
        async with asyncio.timeout(20):
            while not written or relay.lease is None:  # noqa: ASYNC110 (the workers' state, not an event)
                await asyncio.sleep(0.05)
        leader = written[-1][0]

        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(3 * TTL.total_seconds())  # longer than the lease: every renewal and acquire fails
        assert [task for task in tasks if task.done()] == [], "a worker ended on the outage"
        before = len(written)
        await asyncio.to_thread(postgres.start)

        async with asyncio.timeout(60):
            while len(written) < before + 5:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert [task for task in tasks if task.done()] == []
        # whoever leads now (the same process again, or the other after a takeover) writes under its own token
        holders = {holder for holder, _ in written[before:]}
        assert len(holders) == 1
        if holders != {leader}:
            assert max(token for _, token in written[before:]) > max(token for _, token in written[:before])
        async with asyncio.timeout(30):  # the relay leads again too
            while relay.lease is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        await http.aclose()
    assert outcomes == [None, None, None]
    with one.unit_of_work() as uow:
        held = {row.kind: row.holder for row in uow.session.query(LeaseRow)}
    assert held["keeper"] is None  # released at the end
    assert held["outbox_relay"] is None
    one.dispose()
    two.dispose()
