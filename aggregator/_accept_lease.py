"""The accept records' keeping for ``aggregator.accepting``: each step persisted before the next starts, every write
fenced by the record's owner (a process whose lease ran out writes nothing), and the lease renewed while this
process drives the accept.

The renewal is one heartbeat per process for every accept it drives: each third of the lease, one statement extends
the leases this process still holds, on a thread of its own — not the default executor, which a loaded process
fills with its database work (at load 20 with a 2 s lease a queued renewal came too late, and another process took
over a live accept). A renewal that fails (a database blip) is logged and tried again at the next beat; an accept
another process took over is marked lost, and the driver stops before its next step or side effect
(``ensure_held``)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

from aggregator.accept_saga import AcceptRecord, AcceptStep, AcceptStore, AcceptUnitOfWork, QuoteView, advance

log = logging.getLogger(__name__)

T = TypeVar("T")

#: threads for the accepts' database work (each holds a pooled connection while it runs): the default executor has
#: min(32, CPUs + 4) — six on two cores — shared with the rest of the request path, and forty concurrent accepts,
#: each a handful of short transactions one after another, spent most of their time queued for one of them
ACCEPT_THREADS = 12


class LeaseLost(Exception):
    """Another process took this accept over (our lease ran out): stop driving it."""


class AcceptRecords:
    def __init__(self, store: AcceptStore, owner: str, lease: timedelta, clock: Callable[[], datetime]) -> None:
        self._store, self.owner, self._lease, self._clock = store, owner, lease, clock
        self._held: dict[str, datetime] = {}  # accepts this process drives -> the lease it last wrote for each
        self._lost: set[str] = set()  # of those, the ones another process took over
        self._heartbeat: asyncio.Task[None] | None = None
        self._renewals = ThreadPoolExecutor(max_workers=1, thread_name_prefix="accept-lease")
        self._work = ThreadPoolExecutor(max_workers=ACCEPT_THREADS, thread_name_prefix="accept-db")

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` on the accepts' own threads (as ``asyncio.to_thread``, context variables included)."""
        call = functools.partial(contextvars.copy_context().run, work, *args)
        return await asyncio.get_running_loop().run_in_executor(self._work, call)

    def close(self) -> None:
        """Let the accepts' threads end once their work is done (a platform closing; nothing new is started)."""
        self._renewals.shutdown(wait=False)
        self._work.shutdown(wait=False)

    def claim_next(self, driving: Collection[str], chains: Collection[str]) -> tuple[AcceptRecord, QuoteView] | None:
        """Claim one unfinished accept whose lease ran out (not one this process drives, nor one in flight on a chain
        not in ``chains``), with its quote; None when there is none to claim."""
        now = self._clock()
        with self._store.unit_of_work() as uow:
            for candidate in uow.accepts.claimable(now, limit=10, chains=chains):
                if candidate.quote_id in driving:
                    continue
                claimed = uow.accepts.claim(candidate, self.owner, now + self._lease, now)
                if claimed is not None:
                    quote = uow.accepts.quote(claimed.quote_id)
                    assert quote is not None
                    uow.commit()
                    return claimed, quote
            # nothing claimed: a claim that lost its race sent an UPDATE that matched no row, which the unit of work
            # counts as a write and would end by ROLLBACK, at which psycopg forgets the pooled connection's prepared
            # statements (store.db.UnitOfWork); it changed nothing, so COMMIT
            uow.commit()
        return None

    def in_flight_chains(self) -> set[str]:
        """The chains of every accept whose transaction is in flight."""
        with self._store.unit_of_work() as uow:
            return uow.accepts.in_flight_chains()

    def current(self, quote_id: str) -> AcceptRecord | None:
        with self._store.unit_of_work() as uow:
            return uow.accepts.record(quote_id)

    @staticmethod
    def fence(uow: AcceptUnitOfWork, record: AcceptRecord) -> None:
        """LeaseLost unless ``record``'s owner still holds the accept (checked inside the writing transaction)."""
        current = uow.accepts.record(record.quote_id)
        if current is None or current.owner != record.owner:
            raise LeaseLost(record.quote_id)

    def lease_until(self) -> datetime:
        return self._clock() + self._lease

    def ensure_held(self, quote_id: str) -> None:
        """LeaseLost when the accept was taken over, or when this process's lease on it has run out unrenewed (it
        may be taken over at any moment): called before a step with effects outside our records — a lender's
        reservation, the ``openLoan`` submission."""
        if quote_id in self._lost:
            raise LeaseLost(quote_id)
        held_until = self._held.get(quote_id)
        if held_until is not None and held_until <= self._clock():
            raise LeaseLost(quote_id)

    async def step(self, record: AcceptRecord, step: AcceptStep, **changes: Any) -> AcceptRecord:
        """Persist the next step (fenced by the owner: a process that lost the lease writes nothing)."""
        if record.quote_id in self._lost:
            raise LeaseLost(record.quote_id)
        now = self._clock()
        updated = advance(record, step, now, lease_until=now + self._lease, **changes)

        def work() -> None:
            with self._store.unit_of_work() as uow:
                if not uow.accepts.save(updated):  # one statement, fenced on the owner
                    raise LeaseLost(record.quote_id)
                uow.commit()

        await self.run(work)
        self.extended(record.quote_id, updated.lease_until)
        return updated

    async def settle_funding(self, record: AcceptRecord, step: AcceptStep, **changes: Any) -> AcceptRecord:
        """Persist the lender's answer to the funding instruction as ``step`` (fenced by the owner, as ``step``) unless
        its funding is settled already — the lender's ``offer.funding_failed`` recorded first
        (``aggregator.offer_events``), which stands: the record as it is then."""
        if record.quote_id in self._lost:
            raise LeaseLost(record.quote_id)
        now = self._clock()
        updated = advance(record, step, now, lease_until=now + self._lease, **changes)

        def work() -> AcceptRecord:
            with self._store.unit_of_work() as uow:
                if uow.accepts.settle_funding(updated):
                    uow.commit()
                    return updated
                current = uow.accepts.record(record.quote_id)
                uow.commit()  # nothing was written: an UPDATE that matched no row, committed as such
            if current is None or current.owner != record.owner:
                raise LeaseLost(record.quote_id)
            return current

        settled = await self.run(work)
        if settled is updated:
            self.extended(record.quote_id, updated.lease_until)
        return settled

    def extended(self, quote_id: str, lease_until: datetime) -> None:
        """Note a lease this process wrote (a step, the loan recorded)."""
        if quote_id in self._held:
            self._held[quote_id] = max(self._held[quote_id], lease_until)

    @contextlib.asynccontextmanager
    async def renewing(self, record: AcceptRecord) -> AsyncIterator[None]:
        """Renew the lease while this process drives the accept."""
        self._held[record.quote_id] = record.lease_until
        self._lost.discard(record.quote_id)
        beat = self._heartbeat
        if beat is None or beat.done() or beat.get_loop() is not asyncio.get_running_loop():
            self._heartbeat = asyncio.create_task(self._beat(), name=f"accept-lease-{self.owner}")
        try:
            yield
        finally:
            self._held.pop(record.quote_id, None)
            self._lost.discard(record.quote_id)

    async def _beat(self) -> None:
        interval = self._lease.total_seconds() / 3
        loop = asyncio.get_running_loop()
        while self._held:
            await asyncio.sleep(interval)
            quote_ids = list(self._held)
            if not quote_ids:
                break
            lease_until = self.lease_until()
            try:
                renewed = await loop.run_in_executor(self._renewals, self._renew, quote_ids, lease_until)
            except Exception:
                log.warning("renewing the leases of %d accepts failed; retrying", len(quote_ids), exc_info=True)
                continue
            for quote_id in quote_ids:
                if quote_id not in self._held:
                    continue  # finished meanwhile
                if quote_id in renewed:
                    self.extended(quote_id, lease_until)
                else:
                    log.warning("accept of %s was taken over by another process: this one stops driving it", quote_id)
                    self._lost.add(quote_id)
        self._heartbeat = None

    def _renew(self, quote_ids: Sequence[str], lease_until: datetime) -> set[str]:
        with self._store.unit_of_work() as uow:
            renewed = uow.accepts.renew(quote_ids, self.owner, lease_until)
            uow.commit()
            return renewed
