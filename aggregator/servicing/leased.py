"""Run a round (the keeper's, the default job's, the indexer's, the outbox relay's) once across processes, under a
lease (``store.leases``).

The holder runs ``round`` every ``interval`` seconds and renews the lease beside it every ``ttl / 3``; a follower
tries to take the lease every ``ttl / 3``. A round that is about to send a transaction calls ``Leader.fence()``
first, which renews the lease and raises ``LeaseLost`` when another process took it over: a holder that stalled past
its expiry never sends after its successor started. The lease is released when ``stop`` is set.

An outage — the database restarting or locked, the node unreachable (``OUTAGES``) — ends no worker: a follower whose
``acquire`` fails tries again after its pause, doubled per failure up to ``MAX_PAUSE``; a round that fails is logged
and run again after ``interval``. A holder whose renewal fails keeps leading only while its lease is sure to last
until the next try: once it could expire first, the holder steps down (a successor may take it over from then on) and
tries to acquire it again like any follower. Any other exception of a round ends the worker, logged by its
supervisor (``api.workers``), which starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aggregator.errors import AggregatorError
from chain.errors import ChainError
from chain.waiting import wait_at_most
from store.errors import DatabaseError
from store.leases import Lease, LeaseLost, LeaseStore

log = logging.getLogger(__name__)

#: the database or the node out of reach for a while (a restart, SQLite's "database is locked", a dropped
#: connection): a worker logs it and tries again
OUTAGES: tuple[type[Exception], ...] = (DatabaseError, OSError, TimeoutError)
#: what a round may fail with and be run again next interval
ROUND_FAULTS: tuple[type[Exception], ...] = (ChainError, AggregatorError, *OUTAGES)
#: the longest pause of a follower between two ``acquire`` that failed
MAX_PAUSE = 60.0


@dataclass
class Leader:
    """The held lease of one round's runner; ``fence()`` before every external effect."""

    leases: LeaseStore
    lease: Lease
    ttl: timedelta

    async def fence(self) -> None:
        self.lease = await self.leases.renew(self.lease, self.ttl)

    def may_expire_within(self, seconds: float) -> bool:
        """Whether the lease, unless renewed, may expire within ``seconds`` (by this process's clock)."""
        return datetime.now(UTC) + timedelta(seconds=seconds) >= self.lease.expires_at


Round = Callable[[Leader], Awaitable[object]]
SteppedDown = Callable[[], Awaitable[None]]


def pause_after(failures: int, pause: float) -> float:
    """The pause before the next ``acquire`` after ``failures`` in a row: ``pause``, doubling, at most
    ``MAX_PAUSE`` (or ``pause`` when that is longer)."""
    return float(min(max(pause, MAX_PAUSE), pause * 2.0 ** max(0, failures - 1)))


async def run_leased(
    kind: str,
    chain_id: int,
    leases: LeaseStore,
    holder: str,
    ttl: timedelta,
    interval: float,
    round_: Round,
    stop: asyncio.Event,
    *,
    label: str | None = None,
    stepped_down: SteppedDown | None = None,
) -> None:
    """Run ``round_`` every ``interval`` seconds while holding lease (``kind``, ``chain_id``), until ``stop``.
    ``label`` names the worker in the log; ``stepped_down`` runs each time this process stops leading."""
    name = label or f"{kind} on chain {chain_id}"
    retry = ttl.total_seconds() / 3
    failures = 0
    while not stop.is_set():
        try:
            lease = await leases.acquire(kind, chain_id, holder, ttl)
        except OUTAGES as err:
            failures += 1
            pause = pause_after(failures, retry)
            log.warning("%s: cannot take the lease (%s); trying again in %.1f s", name, err, pause)
            await wait_at_most(stop.wait(), pause)
            continue
        failures = 0
        if lease is not None:
            leader = Leader(leases, lease, ttl)
            log.info("%s: leader %s (token %s)", name, holder, lease.token)
            try:
                lost = await _lead(name, leader, interval, retry, round_, stop)
            except BaseException:  # cancelled, or a round failed unexpectedly: the lease is left for a successor
                await _step_down(name, leader, stepped_down, release=True)
                raise
            await _step_down(name, leader, stepped_down, release=not lost)
        await wait_at_most(stop.wait(), retry)


async def _step_down(name: str, leader: Leader, stepped_down: SteppedDown | None, *, release: bool) -> None:
    if stepped_down is not None:
        await stepped_down()
    if release:
        await _release(name, leader)


async def _release(name: str, leader: Leader) -> None:
    try:
        await leader.leases.release(leader.lease)
    except LeaseLost:
        pass
    except OUTAGES as err:  # it expires by itself
        log.warning("%s: lease not released: %s", name, err)


async def _lead(name: str, leader: Leader, interval: float, retry: float, round_: Round, stop: asyncio.Event) -> bool:
    """Run rounds until ``stop`` or the lease is lost (or may have expired); True when it was."""
    lost = asyncio.Event()
    renewing = asyncio.create_task(_renew(name, leader, retry, lost, stop), name=f"{name} lease")
    try:
        while not stop.is_set() and not lost.is_set():
            if leader.may_expire_within(0):  # not renewed in time (a renewal that hangs): another may hold it now
                log.warning("%s: lease expired before its renewal: stepping down", name)
                lost.set()
                break
            try:
                await round_(leader)
            except LeaseLost as err:
                log.warning("%s: %s", name, err)
                lost.set()
                break
            except ROUND_FAULTS as err:
                # an RPC or database outage: logged, tried again at the next round
                log.warning("%s: round failed: %s", name, err)
            await wait_at_most(first_of(stop, lost), interval)
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
    return lost.is_set()


async def _renew(name: str, leader: Leader, every: float, lost: asyncio.Event, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(every)
        try:
            await leader.fence()
        except LeaseLost as err:
            log.warning("%s: %s", name, err)
            lost.set()
            return
        except OUTAGES as err:
            if leader.may_expire_within(every * 1.5):  # the next try, even a little late, may come too late
                # another process may take it over before the next try: stop acting as its holder now
                log.warning("%s: lease not renewed (%s) and may expire before the next try: stepping down", name, err)
                lost.set()
                return
            log.warning("%s: lease not renewed (%s); trying again in %.1f s", name, err, every)
        except Exception:
            log.exception("%s: lease renewal failed unexpectedly: stepping down", name)
            lost.set()
            return


async def first_of(*events: asyncio.Event) -> None:
    """Return as soon as one of ``events`` is set."""
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
