"""One loan's work one at a time: in this process and across the platform's processes.

``LoanLocks``: one ``asyncio.Lock`` per loan in this process, kept only while something holds or awaits it (a weak
value), so that one loan's work is done one at a time here without a lock left behind for every loan ever seen.

``LoanClaims``: the loan's lock here, then its **claim** across processes — a lease (``store.leases``) of kind
``"{work}:{loan id}"`` (chain id 0: the loan names its chain), taken in the database before anything is sent and
given up after, renewed every third of its time to live while held, so that a process that dies holding it holds it
no longer than that. Another process's claim is waited for, polling, up to ``patience`` (then ``LoanBusy``); every
claim has its own holder, so two in one process never share one. Each take, renewal and release is a short
transaction of its own: no connection is held, nor a transaction left open, while the chain is waited for. A loan's
row stays after its last claim (a lease row is never deleted: its token only grows), one per loan and work. On
SQLite (one process) the lock decides and the lease is always free. Until 2026-11-29 only the lock held: two API
processes each checked a ``"max"`` repayment of one loan before either was sent, and the relayer sent both — the
second reverted at its cost, its borrower told ``repayment-rejected`` (sign a new one) of a loan repaid.

The claim is not a fence: a holder stalled past its time to live (a process paused longer than ``ttl``, its renewal
not run) may still send while another takes the claim over. A transaction's intent key still makes the same call one
transaction, and the chain's own checks refuse a repayment of a loan closed meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from weakref import WeakValueDictionary

from store.leases import Lease, LeaseLost, LeaseStore

log = logging.getLogger(__name__)

#: a claim's time to live: a process that dies holding it holds it this long at most
CLAIM_TTL = timedelta(seconds=30)
#: the pause between two reads of another process's claim, at first and at most (doubled in between)
FIRST_POLL, LAST_POLL = 0.05, 1.0


class LoanLocks:
    """``locks(loan_id)``: the lock of that loan, made on first use."""

    def __init__(self) -> None:
        self._locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()

    def __call__(self, loan_id: str) -> asyncio.Lock:
        lock = self._locks.get(loan_id)
        if lock is None:
            lock = self._locks[loan_id] = asyncio.Lock()
        return lock


class LoanBusy(Exception):
    """Another process held the loan's claim for all of the ``patience``: nothing was done."""

    def __init__(self, loan_id: str, work: str, waited: float) -> None:
        super().__init__(f"{work} of loan {loan_id}: another process held it for {waited:.0f} s")
        self.loan_id, self.work = loan_id, work


class LoanClaims:
    """``async with claims.hold(loan_id)``: the loan's ``work`` (``"repayment"``, ``"offchain-payment"``) done here
    alone, across processes when ``leases`` is given (else in this process only: an in-memory store's service)."""

    def __init__(
        self,
        work: str,
        locks: LoanLocks,
        leases: LeaseStore | None,
        *,
        patience: float,
        ttl: timedelta = CLAIM_TTL,
    ) -> None:
        self.work, self._locks, self._leases, self.patience, self.ttl = work, locks, leases, patience, ttl

    def kind(self, loan_id: str) -> str:
        """The lease's kind of the loan's claim (at most 64 characters: a loan id has 36)."""
        return f"{self.work}:{loan_id}"

    @contextlib.asynccontextmanager
    async def hold(self, loan_id: str) -> AsyncIterator[None]:
        """The loan's lock here, then its claim (see the module docstring); ``LoanBusy`` when another process held
        the claim for all of the ``patience``."""
        async with self._locks(loan_id):
            if self._leases is None:
                yield
                return
            lease = await self._claim(self._leases, loan_id)
            renewing = asyncio.create_task(self._renew(self._leases, lease))
            try:
                yield
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    lease = await renewing
                await self._release(self._leases, lease)

    async def _claim(self, leases: LeaseStore, loan_id: str) -> Lease:
        holder, kind = f"{self.work}-{uuid.uuid4().hex}", self.kind(loan_id)
        loop = asyncio.get_running_loop()
        started, pause = loop.time(), FIRST_POLL
        while True:
            lease = await leases.acquire(kind, 0, holder, self.ttl)
            if lease is not None:
                return lease
            waited = loop.time() - started
            if waited >= self.patience:
                raise LoanBusy(loan_id, self.work, waited)
            await asyncio.sleep(min(pause, self.patience - waited))
            pause = min(pause * 2, LAST_POLL)

    async def _renew(self, leases: LeaseStore, lease: Lease) -> Lease:
        """Renew ``lease`` every third of its time to live until cancelled; the lease last held (returned when
        cancelled: ``asyncio.Task`` gives the return value of a coroutine that swallows its cancellation)."""
        try:
            while True:
                await asyncio.sleep(self.ttl.total_seconds() / 3)
                lease = await leases.renew(lease, self.ttl)
        except asyncio.CancelledError:
            return lease
        except LeaseLost as err:  # stalled past its time to live: another process may hold the claim now
            log.error("the %s claim of %s was lost while held: %s", self.work, lease.kind, err)
        except Exception:  # the database away: the claim expires unless renewed, as a dead process's does
            log.exception("renewing the %s claim %s failed", self.work, lease.kind)
        return lease

    async def _release(self, leases: LeaseStore, lease: Lease) -> None:
        try:
            await leases.release(lease)
        except Exception:  # the work is done: its outcome stands, and the claim expires by itself
            log.exception("releasing the %s claim %s failed: it expires in %s", self.work, lease.kind, self.ttl)
