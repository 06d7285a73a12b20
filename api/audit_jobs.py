"""The audit log's jobs at the edge, where the database and the chains meet (``compliance.audit`` is pure,
``compliance.audit_anchor`` talks to the chain, ``store.compliance.SqlAuditLog`` to the database):

* ``seal`` — number and chain the entries written since the last seal, in one unit of work;
* ``anchor`` — seal, then anchor the head on every given chain through its audit-anchor transaction manager, each
  chain on its own (one that fails is named, after the others are anchored);
* ``verify`` — the sealed log against itself and against every anchor read back from every chain;
* ``run_anchoring`` — the periodic worker, under one lease (kind ``audit-anchor``, chain id 0: the log is one across
  chains), so several processes anchor each head once: it seals every ``seal_interval`` (a second by default: an
  entry is tamper-evident against the log's own hashes that soon after it is written) and anchors every ``interval``
  (an on-chain transaction per chain: the window in which a rewrite of the whole database goes unproven).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from aggregator.servicing.leased import Leader, run_leased
from chain.client import ChainClient
from chain.errors import ChainError
from chain.transactions import TransactionManager
from compliance.audit import Anchor, AuditEntry, VerifyReport, verify
from compliance.audit_anchor import AnchorContract, AnchorError, anchor_head, read_anchors
from store.compliance import SqlAuditLog
from store.db import Database
from store.leases import SqlLeaseStore
from store.reconciliation_runs import SqlReconciliationRuns

log = logging.getLogger(__name__)

LEASE_KIND = "audit-anchor"
LOG_CHAIN_ID = 0  # the audit log is one across chains: its lease is not a chain's


@dataclass(frozen=True, slots=True)
class AnchorChain:
    """One chain's AuditAnchor and, to anchor, the audit anchor key's transaction manager on that chain."""

    client: ChainClient
    contract: AnchorContract
    transactions: TransactionManager | None = None


def seal(database: Database) -> tuple[int, tuple[int, str] | None]:
    """Seal what is pending; (entries sealed, the head after it)."""
    with database.unit_of_work() as uow:
        audit = SqlAuditLog(uow.session)
        sealed = audit.seal()
        head = audit.head()
        uow.commit()
    return sealed, head


class AnchoringFailed(AnchorError):
    """The head could not be anchored on some chains (``failed``: chain name → why); it was on the others
    (``anchored``, as ``anchor`` returns them)."""

    def __init__(self, anchored: dict[str, str | None], failed: dict[str, str]) -> None:
        self.anchored, self.failed = anchored, failed
        super().__init__("; ".join(f"{name}: {why}" for name, why in failed.items()))


async def anchor(database: Database, chains: Sequence[AnchorChain]) -> dict[str, str | None]:
    """Seal, then anchor the head on every chain; chain name → transaction hash (None: already anchored there).
    Each chain on its own: one whose anchor fails (refused, reverted, its node not answering) does not keep the head
    off the chains after it; once every chain is tried, ``AnchoringFailed`` names each failure with what was
    anchored."""
    _, head = await asyncio.to_thread(seal, database)
    if head is None:
        return {}
    done: dict[str, str | None] = {}
    failed: dict[str, str] = {}
    for chain in chains:
        name = chain.contract.chain_name
        if chain.transactions is None:
            raise ValueError(f"{name}: anchoring needs the audit anchor key's transactions")
        try:
            done[name] = await anchor_head(chain.transactions, chain.contract, head)
        except (AnchorError, ChainError) as err:
            failed[name] = str(err)
    if failed:
        raise AnchoringFailed(done, failed)
    return done


def _log_entries(database: Database) -> tuple[list[AuditEntry], int, tuple[int, str] | None]:
    with database.unit_of_work() as uow:
        audit = SqlAuditLog(uow.session)
        head = audit.head()  # first: a seal committed meanwhile only adds entries past it
        return audit.entries(), audit.pending(), head


async def verify_log(database: Database, chains: Sequence[AnchorChain]) -> VerifyReport:
    """The sealed log checked against itself and against every anchor on every chain, then every reconciliation run
    the log records and every finished one against its digest and its first audit entry (read-only)."""
    entries, pending, sealed_head = await asyncio.to_thread(_log_entries, database)
    anchors: list[Anchor] = []
    for chain in chains:
        anchors.extend(await read_anchors(chain.client, chain.contract))
    runs_checked, run_problems = await asyncio.to_thread(SqlReconciliationRuns(database).tampered)
    report = verify(entries, anchors, pending, sealed_head)
    return replace(report, runs_checked=runs_checked, run_problems=tuple(run_problems))


async def run_anchoring(
    database: Database,
    chains: Sequence[AnchorChain],
    stop: asyncio.Event,
    *,
    interval: float = 60.0,
    seal_interval: float = 1.0,
    ttl: timedelta = timedelta(seconds=120),
) -> None:
    """While holding the ``audit-anchor`` lease, until ``stop``: seal every ``seal_interval`` seconds, and seal and
    anchor every ``interval`` seconds (the first round anchors). The lease loop is the other workers'
    (``aggregator.servicing.leased.run_leased``): a database that does not answer is waited out, not the end of it."""
    anchored_at: float | None = None

    async def round_(_: Leader) -> None:
        nonlocal anchored_at
        now = time.monotonic()
        if anchored_at is None or now - anchored_at >= interval:
            anchored_at = now
            try:
                await anchor(database, chains)  # sealed first
            except AnchoringFailed as err:  # a chain that refuses the anchor: the log is sealed, the others anchored
                for name, why in err.failed.items():
                    log.error("audit anchoring failed on %s: %s", name, why)
            except ValueError as err:
                log.error("audit anchoring failed: %s", err)
        else:
            await asyncio.to_thread(seal, database)

    holder = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
    leases = SqlLeaseStore(database.sessions)
    every = min(interval, seal_interval)
    await run_leased(LEASE_KIND, LOG_CHAIN_ID, leases, holder, ttl, every, round_, stop, label="audit anchoring")
