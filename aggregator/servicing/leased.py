"""Run a per-chain round (the keeper's, the default job's) once across processes, under a lease (``store.leases``).

The holder runs ``round`` every ``interval`` seconds and renews the lease beside it every ``ttl / 3``; a follower
tries to take the lease every ``ttl / 3``. A round that is about to send a transaction calls ``Leader.fence()``
first, which renews the lease and raises ``LeaseLost`` when another process took it over: a holder that stalled past
its expiry never sends after its successor started. The lease is released when ``stop`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from aggregator.errors import AggregatorError
from chain.errors import ChainError
from chain.waiting import wait_at_most
from store.errors import DatabaseError
from store.leases import Lease, LeaseLost, LeaseStore

log = logging.getLogger(__name__)


@dataclass
class Leader:
    """The held lease of one round's runner; ``fence()`` before every external effect."""

    leases: LeaseStore
    lease: Lease
    ttl: timedelta

    async def fence(self) -> None:
        self.lease = await self.leases.renew(self.lease, self.ttl)


Round = Callable[[Leader], Awaitable[object]]


async def run_leased(
    kind: str,
    chain_id: int,
    leases: LeaseStore,
    holder: str,
    ttl: timedelta,
    interval: float,
    round_: Round,
    stop: asyncio.Event,
) -> None:
    """Run ``round_`` every ``interval`` seconds while holding lease (``kind``, ``chain_id``), until ``stop``."""
    retry = ttl.total_seconds() / 3
    leader: Leader | None = None
    try:
        while not stop.is_set():
            lease = await leases.acquire(kind, chain_id, holder, ttl)
            if lease is not None:
                leader = Leader(leases, lease, ttl)
                log.info("%s on chain %s: leader %s (token %s)", kind, chain_id, holder, lease.token)
                await _lead(kind, chain_id, leader, interval, retry, round_, stop)
                leader = None
            await wait_at_most(stop.wait(), retry)
    finally:
        if leader is not None:
            with contextlib.suppress(LeaseLost):
                await leases.release(leader.lease)


async def _lead(
    kind: str, chain_id: int, leader: Leader, interval: float, retry: float, round_: Round, stop: asyncio.Event
) -> None:
    lost = asyncio.Event()
    renewing = asyncio.create_task(_renew(kind, chain_id, leader, retry, lost, stop), name=f"{kind}-lease-{chain_id}")
    try:
        while not stop.is_set() and not lost.is_set():
            try:
                await round_(leader)
            except LeaseLost as err:
                log.warning("%s on chain %s: %s", kind, chain_id, err)
                lost.set()
                break
            except (ChainError, AggregatorError, DatabaseError, OSError, TimeoutError) as err:
                # an RPC or database outage: logged, tried again at the next round
                log.warning("%s on chain %s: round failed: %s", kind, chain_id, err)
            await wait_at_most(stop.wait(), interval)
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError, LeaseLost):
            await renewing
    if not lost.is_set():
        with contextlib.suppress(LeaseLost):
            await leader.leases.release(leader.lease)


async def _renew(
    kind: str, chain_id: int, leader: Leader, every: float, lost: asyncio.Event, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        await asyncio.sleep(every)
        try:
            await leader.fence()
        except LeaseLost as err:
            log.warning("%s on chain %s: %s", kind, chain_id, err)
            lost.set()
            return
