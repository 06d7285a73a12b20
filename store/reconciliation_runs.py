"""Reading reconciliation runs for the API and the report: rows become ``compliance.reconcile_runs`` values here.
Lists and reports read on the read-only URL when one is set; a single run on the primary (a run just started must be
found). Read only: nothing here commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from compliance.audit import AuditKind
from compliance.reconcile_runs import ReconciliationRun, StoredDiscrepancy, run_tampering
from store.compliance import (
    AuditEntryRow,
    DiscrepancyFilter,
    DiscrepancyRow,
    ReconciliationRunRow,
    SqlReconciliationRepository,
)
from store.db import Database


def _run(row: ReconciliationRunRow) -> ReconciliationRun:
    return ReconciliationRun(
        row.id,
        row.started_by,
        row.status,
        row.created_at,
        row.finished_at,
        row.digest,
        dict(row.counts),
        list(row.chains),
        row.error,
    )


def _discrepancy(row: DiscrepancyRow) -> StoredDiscrepancy:
    return StoredDiscrepancy(
        row.id,
        row.created_at,
        row.chain_name,
        row.category,
        row.subject,
        row.what,
        row.detail,
        row.tx_hash,
        row.block_number,
        row.record_ref,
    )


class SqlReconciliationRuns:
    def __init__(self, database: Database) -> None:
        self._db = database

    def get(self, run_id: str) -> ReconciliationRun | None:
        with self._db.unit_of_work() as uow:
            row = SqlReconciliationRepository(uow.session).get(run_id)
            return None if row is None else _run(row)

    def page(self, after: tuple[datetime, str] | None, limit: int) -> list[ReconciliationRun]:
        """Runs newest first after the cursor ``after``."""
        with self._db.read_only() as uow:
            return [_run(row) for row in SqlReconciliationRepository(uow.session).page(after, limit)]

    def discrepancies(
        self, run_id: str, wanted: DiscrepancyFilter, after: tuple[datetime, str] | None, limit: int | None
    ) -> list[StoredDiscrepancy]:
        """A run's discrepancies in their order, after the cursor ``after``; every one for ``limit`` None."""
        with self._db.read_only() as uow:
            rows = SqlReconciliationRepository(uow.session).discrepancies(run_id, wanted, after, limit)
            return [_discrepancy(row) for row in rows]

    def report(self, run_id: str) -> tuple[ReconciliationRun, list[StoredDiscrepancy]] | None:
        """The run with every discrepancy, read together; None if unknown."""
        with self._db.read_only() as uow:
            repository = SqlReconciliationRepository(uow.session)
            row = repository.get(run_id)
            if row is None:
                return None
            items = repository.discrepancies(run_id, DiscrepancyFilter(), None, None)
            return _run(row), [_discrepancy(item) for item in items]

    def tampered(self) -> tuple[int, list[str]]:
        """Every run the audit log records (its ``reconciliation`` entries, sealed or not yet) and every finished
        run, each checked against its digest and its entry: how many were checked, and ``reconciliation <id>:
        <problem>`` for each problem found. Driven by the log as well as by the runs, so a run the log records that
        is deleted, or stored as anything but ``done``, is reported rather than left out; a run's entries are taken
        in the log's order (sequence number, the unsealed after), so a second entry cannot stand in for the first."""
        with self._db.read_only() as uow:
            session = uow.session
            repository = SqlReconciliationRepository(session)
            audited: dict[str, list[dict[str, Any]]] = {}
            entries = session.scalars(
                select(AuditEntryRow)
                .where(AuditEntryRow.kind == AuditKind.RECONCILIATION)
                .order_by(AuditEntryRow.seq.asc().nulls_last(), AuditEntryRow.id)  # the log's order, unsealed last
            )
            for entry in entries:
                audited.setdefault(entry.subject, []).append(dict(entry.data))
            done = select(ReconciliationRunRow.id).where(ReconciliationRunRow.status == "done")
            run_ids = sorted(set(audited) | set(session.scalars(done)))
            problems = list[str]()
            for run_id in run_ids:
                row = repository.get(run_id)
                items = [
                    _discrepancy(item) for item in repository.discrepancies(run_id, DiscrepancyFilter(), None, None)
                ]
                problems.extend(
                    f"reconciliation {run_id}: {problem}"
                    for problem in run_tampering(None if row is None else _run(row), items, audited.get(run_id, []))
                )
            return len(run_ids), problems
