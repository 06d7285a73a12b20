"""Leases: one holder at a time for a piece of background work, per (worker kind, chain id), with a fencing token.

Background workers (the indexer now; the keeper, the defaulter and the outbox relay later) run once per chain
across processes. A worker *acquires* the lease row of its (kind, chain id): it gets it when the row is free, its
expiry has passed, or it already holds it; taking it over from another holder increments the row's **fencing
token**. The holder *renews* well before expiry; a holder that dies stops renewing and another process takes over
once ``expires_at`` has passed, so takeover takes at most the lease's time to live plus the follower's retry pause.

Every write the holder makes checks its token inside the writing transaction (``fence``): the row is read
``FOR KEY SHARE``, so a takeover (``FOR UPDATE``) waits for that write to commit, and a write that starts after a
takeover sees a moved token and fails with ``LeaseLost`` (its transaction rolls back). The holder's own renewal
takes only ``FOR NO KEY UPDATE``, which a fence does not block: a long write never lets its own lease expire.
A stale holder — paused by the garbage collector, cut off from the database for longer than its lease — therefore
never writes over its successor. Tokens only grow, also across a release: a row is never deleted.

A row lock rather than an advisory lock: an advisory lock vanishes silently when PostgreSQL restarts or the
connection drops, a row with a token does not. Expiry uses the processes' clocks (UTC); keep them in sync (NTP) and
the time to live well above the expected skew. On SQLite (one process) the same code holds within that process.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import BigInteger, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from store.base import Base
from store.types import UtcDateTime


class LeaseRow(Base):
    __tablename__ = "leases"

    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200), nullable=True)
    token: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class LeaseLost(Exception):
    """The lease moved to another holder (its fencing token changed) or was never held: stop writing."""

    def __init__(self, kind: str, chain_id: int, detail: str) -> None:
        super().__init__(f"lease {kind} on chain {chain_id} lost: {detail}")
        self.kind, self.chain_id = kind, chain_id


@dataclass(frozen=True, slots=True)
class Lease:
    """A held lease: who holds it, its fencing token, and until when (unless renewed)."""

    kind: str
    chain_id: int
    holder: str
    token: int
    expires_at: datetime


class LeaseStore(Protocol):
    """The lease primitive workers use (``SqlLeaseStore`` on the database; ``fence`` runs in a writer's own
    transaction)."""

    async def acquire(self, kind: str, chain_id: int, holder: str, ttl: timedelta) -> Lease | None:
        """The lease, newly taken or renewed; None while another holder's lease is unexpired."""
        ...

    async def renew(self, lease: Lease, ttl: timedelta) -> Lease:
        """Extend a held lease; raises ``LeaseLost`` when its token moved."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give the lease up now (a successor need not wait for expiry); a lost lease is left alone."""
        ...

    def fence(self, session: Session, lease: Lease) -> None:
        """Inside the caller's transaction: raise ``LeaseLost`` unless ``lease`` still holds the row's token."""
        ...


def _now() -> datetime:
    return datetime.now(UTC)


_SQLITE_LOCK = threading.Lock()


def fence(session: Session, lease: Lease) -> None:
    """Check ``lease``'s fencing token in ``session``'s transaction; the shared row lock lasts until it ends."""
    row = session.execute(
        select(LeaseRow.token, LeaseRow.holder)
        .where(LeaseRow.kind == lease.kind, LeaseRow.chain_id == lease.chain_id)
        .with_for_update(read=True, key_share=True)
    ).one_or_none()
    if row is None or row.token != lease.token or row.holder != lease.holder:
        found = "no lease row" if row is None else f"token {row.token} held by {row.holder}"
        raise LeaseLost(lease.kind, lease.chain_id, f"expected token {lease.token} of {lease.holder}, found {found}")


class SqlLeaseRepository:
    """Lease rows in the caller's session; never commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _locked(self, kind: str, chain_id: int, *, takeover: bool = True) -> LeaseRow:
        """The row, created if missing, locked ``FOR UPDATE`` (a takeover: waits for the holder's fenced writes)
        or ``FOR NO KEY UPDATE`` (the holder's renewal or release: never waits for them)."""
        if self.session.get(LeaseRow, (kind, chain_id)) is None:
            try:
                with self.session.begin_nested():
                    now = _now()
                    self.session.add(
                        LeaseRow(kind=kind, chain_id=chain_id, holder=None, token=0, expires_at=now, updated_at=now)
                    )
            except IntegrityError:
                pass  # created concurrently: the row lock below orders us after its creator
        return self.session.scalars(
            select(LeaseRow)
            .where(LeaseRow.kind == kind, LeaseRow.chain_id == chain_id)
            .with_for_update(key_share=not takeover)
            .execution_options(populate_existing=True)
        ).one()

    def acquire(self, kind: str, chain_id: int, holder: str, ttl: timedelta, now: datetime) -> Lease | None:
        row = self._locked(kind, chain_id)
        if row.holder != holder:
            if row.holder is not None and row.expires_at > now:
                return None
            row.token += 1  # a new holder: every write of the previous one is fenced off from here on
            row.holder = holder
        row.expires_at, row.updated_at = now + ttl, now
        return Lease(kind, chain_id, holder, row.token, row.expires_at)

    def renew(self, lease: Lease, ttl: timedelta, now: datetime) -> Lease:
        row = self._locked(lease.kind, lease.chain_id, takeover=False)
        if row.token != lease.token or row.holder != lease.holder:
            raise LeaseLost(lease.kind, lease.chain_id, f"token is {row.token}, held by {row.holder}")
        row.expires_at, row.updated_at = now + ttl, now
        return Lease(lease.kind, lease.chain_id, lease.holder, row.token, row.expires_at)

    def release(self, lease: Lease, now: datetime) -> None:
        row = self._locked(lease.kind, lease.chain_id, takeover=False)
        if row.token == lease.token and row.holder == lease.holder:
            row.holder, row.expires_at, row.updated_at = None, now, now

    def get(self, kind: str, chain_id: int) -> LeaseRow | None:
        return self.session.get(LeaseRow, (kind, chain_id))


class SqlLeaseStore:
    """``LeaseStore`` on SQLAlchemy: each operation is one committed transaction in a worker thread. Holds across
    processes on PostgreSQL (row locks); SQLite serves one process."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        bind = sessions.kw.get("bind")
        # SQLite has no row locks: within its one process, a lock serializes the read-then-write of a lease row
        self._local = _SQLITE_LOCK if bind is not None and bind.dialect.name == "sqlite" else contextlib.nullcontext()

    def _acquire(self, kind: str, chain_id: int, holder: str, ttl: timedelta) -> Lease | None:
        with self._local, self.sessions() as session:
            lease = SqlLeaseRepository(session).acquire(kind, chain_id, holder, ttl, _now())
            session.commit()
            return lease

    def _renew(self, lease: Lease, ttl: timedelta) -> Lease:
        with self._local, self.sessions() as session:
            renewed = SqlLeaseRepository(session).renew(lease, ttl, _now())
            session.commit()
            return renewed

    def _release(self, lease: Lease) -> None:
        with self._local, self.sessions() as session:
            SqlLeaseRepository(session).release(lease, _now())
            session.commit()

    async def acquire(self, kind: str, chain_id: int, holder: str, ttl: timedelta) -> Lease | None:
        return await asyncio.to_thread(self._acquire, kind, chain_id, holder, ttl)

    async def renew(self, lease: Lease, ttl: timedelta) -> Lease:
        return await asyncio.to_thread(self._renew, lease, ttl)

    async def release(self, lease: Lease) -> None:
        await asyncio.to_thread(self._release, lease)

    def fence(self, session: Session, lease: Lease) -> None:
        fence(session, lease)
