"""Persistence for ``compliance``: decision records, KYC applicants, webhook deliveries seen, sealed identities, the
audit log (``compliance.audit``). The
subject data keys are not here: they live in a key store apart from this database (``store.keystore``,
``compliance.kms``), so no backup of it can open the sealed identities.

Repositories take a Session and never commit; the unit of work does."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Insert,
    Integer,
    LargeBinary,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from compliance.audit import AuditEntry, AuditKind, PendingEntry, audit_data, seal
from compliance.decisions import DecisionKind, DecisionRecord, Outcome
from compliance.jurisdiction import Reason
from compliance.kyc import KycState, KycStatus, KycTier
from compliance.reconcile import DETAIL_CHARS, SUBJECT_CHARS, WHAT_CHARS, ChainResult
from store.base import Base
from store.types import UtcDateTime
from store.unreadable import unreadable_values

#: an audit entry to write: its kind, subject, data and time (``SqlAuditLog.append``'s arguments)
AuditItem = tuple[AuditKind, str, Mapping[str, Any], datetime]

log = logging.getLogger(__name__)


class ComplianceDecisionRow(Base):
    __tablename__ = "compliance_decisions"

    decision_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject_ref: Mapped[str] = mapped_column(String(128), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    versions: Mapped[dict[str, str]] = mapped_column(JSON)
    inputs_hash: Mapped[str] = mapped_column(String(66))
    record_hash: Mapped[str] = mapped_column(String(66))
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime())
    pii_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # the credit request the decision was made for (its screening and its offers' checks); null for the others and
    # for decisions recorded before it was kept
    request_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    # a screening decision's screened identity (``DecisionRecord.screened_identity``: the keyed fingerprint of the
    # borrower id, name and date of birth screened), kept beside the record, not in its hashed body; null for other
    # decisions and for those recorded before it was kept (migration 0034)
    screened_identity: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_compliance_decisions_decided_at_decision_id", "decided_at", "decision_id"),)


class KycApplicantRow(Base):
    __tablename__ = "compliance_kyc_applicants"

    applicant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    tier: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # when the provider reached the verdict stored (its reviewedAt, else when received); NULL while pending
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class WebhookDeliveryRow(Base):
    __tablename__ = "compliance_webhook_deliveries"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


def _reasons_out(reasons: tuple[Reason, ...]) -> list[dict[str, Any]]:
    return [{"code": r.code, "message": r.message, "citation": r.citation} for r in reasons]


def _reasons_in(rows: list[dict[str, Any]]) -> tuple[Reason, ...]:
    return tuple(Reason(r["code"], r["message"], r.get("citation")) for r in rows)


def _decision_columns(record: DecisionRecord, record_hash: str, request_id: str | None) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "decision_id": record.decision_id,
        "kind": record.kind.value,
        "subject_ref": record.subject_ref,
        "outcome": record.outcome.value,
        "reasons": _reasons_out(record.reasons),
        "versions": dict(record.versions),
        "inputs_hash": record.inputs_hash,
        "record_hash": record_hash,
        "decided_at": record.decided_at,
        "pii_sealed": record.pii_sealed,
        "screened_identity": record.screened_identity,
    }


def _decision_audit(record: DecisionRecord, record_hash: str) -> AuditItem:
    data = {
        "decisionId": record.decision_id,
        "decisionKind": record.kind.value,
        "outcome": record.outcome.value,
        "recordHash": record_hash,
    }
    return AuditKind.COMPLIANCE_DECISION, record.subject_ref, data, record.decided_at


def decision_rows(
    records: Sequence[DecisionRecord], request_id: str | None
) -> tuple[list[dict[str, Any]], list[AuditItem]]:
    """The records' rows and their audit entries, each record hashed once (for both)."""
    columns, audits = [], []
    for record in records:
        record_hash = record.record_hash()
        columns.append(_decision_columns(record, record_hash, request_id))
        audits.append(_decision_audit(record, record_hash))
    return columns, audits


class SqlDecisionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, record: DecisionRecord, request_id: str | None = None) -> None:
        """Record ``record`` (made for the credit request ``request_id``, if any) and chain it into the audit log."""
        record_hash = record.record_hash()
        self.session.add(ComplianceDecisionRow(**_decision_columns(record, record_hash, request_id)))
        SqlAuditLog(self.session).append(*_decision_audit(record, record_hash))

    def insert_all(self, records: Sequence[DecisionRecord], request_id: str | None = None) -> None:
        """``add`` for many records as plain INSERTs (executemany), run at once rather than at the flush: for a
        writer that reads nothing back and has no ORM audit entry pending before them (the credit request's write,
        whose entries then keep their order)."""
        if not records:
            return
        columns, audits = decision_rows(records, request_id)
        self.session.flush()  # whatever the ORM holds pending goes first, as the ORM's own INSERTs would
        connection = self.session.connection()
        connection.execute(INSERT_DECISIONS, columns)
        connection.execute(INSERT_AUDIT_ENTRIES, [audit_columns(*audit) for audit in audits])

    def _record(self, row: ComplianceDecisionRow) -> DecisionRecord:
        return DecisionRecord(
            row.decision_id,
            DecisionKind(row.kind),
            row.subject_ref,
            Outcome(row.outcome),
            _reasons_in(row.reasons),
            dict(row.versions),
            row.inputs_hash,
            row.decided_at,
            row.pii_sealed,
            screened_identity=row.screened_identity,
        )

    def get(self, decision_id: str) -> DecisionRecord | None:
        row = self.session.get(ComplianceDecisionRow, decision_id)
        return None if row is None else self._record(row)

    def stored_hash(self, decision_id: str) -> str | None:
        row = self.session.get(ComplianceDecisionRow, decision_id)
        return None if row is None else row.record_hash

    def for_subject(self, subject_ref: str) -> list[DecisionRecord]:
        rows = self.session.scalars(
            select(ComplianceDecisionRow)
            .where(ComplianceDecisionRow.subject_ref == subject_ref)
            .order_by(ComplianceDecisionRow.decided_at)
        )
        return [self._record(row) for row in rows]

    def screened_identities(self, subject_ref: str, kinds: Collection[DecisionKind]) -> set[str | None]:
        found = self.session.scalars(
            select(ComplianceDecisionRow.screened_identity)
            .where(
                ComplianceDecisionRow.subject_ref == subject_ref,
                ComplianceDecisionRow.kind.in_([kind.value for kind in kinds]),
            )
            .distinct()
        )
        return set(found)


class SqlKycRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def save(self, status: KycStatus) -> None:
        row = self.session.get(KycApplicantRow, status.applicant_id)
        if row is None:
            row = KycApplicantRow(applicant_id=status.applicant_id, subject_id=status.subject_id)
            self.session.add(row)
        row.state = status.state.value
        row.tier = int(status.tier)
        row.reasons = _reasons_out(status.reasons)
        row.updated_at = status.updated_at
        row.reviewed_at = status.reviewed_at

    def remove(self, applicant_id: str) -> None:
        """Forget an applicant whose verification session never opened."""
        self.session.execute(delete(KycApplicantRow).where(KycApplicantRow.applicant_id == applicant_id))

    def get(self, applicant_id: str) -> KycStatus | None:
        row = self.session.get(KycApplicantRow, applicant_id)
        return None if row is None else self._status(row)

    def latest_for_subject(self, subject_id: str) -> KycStatus | None:
        """The subject's newest applicant; of two updated at the same instant, the greater applicant id."""
        row = self.session.scalars(
            select(KycApplicantRow)
            .where(KycApplicantRow.subject_id == subject_id)
            .order_by(KycApplicantRow.updated_at.desc(), KycApplicantRow.applicant_id.desc())
            .limit(1)
        ).first()
        return None if row is None else self._status(row)

    @staticmethod
    def _status(row: KycApplicantRow) -> KycStatus:
        return KycStatus(
            row.applicant_id,
            row.subject_id,
            KycState(row.state),
            KycTier(row.tier),
            _reasons_in(row.reasons),
            row.updated_at,
            row.reviewed_at,
        )


class SqlReplayGuard:
    """Webhook event ids seen, across processes: the primary key refuses a second delivery."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def remember(self, event_id: str, received_at: datetime) -> bool:
        """True the first time ``event_id`` is seen. One insert-if-absent in the caller's transaction, so a delivery
        whose handling then rolls back is not remembered and its retry is accepted (a savepoint opened before any
        write was committed at once by SQLite's driver, which refused that retry as a replay)."""
        insert = pg_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = (
            insert(WebhookDeliveryRow)
            .values(event_id=event_id, received_at=received_at)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(WebhookDeliveryRow.event_id)
        )
        return self.session.scalar(statement) is not None


class BorrowerIdentityRow(Base):
    """The borrower's identity profile (names, date of birth), sealed with AES-GCM under the subject's data key:
    destroying the key (erasure) leaves only ciphertext."""

    __tablename__ = "compliance_identities"

    subject_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    country: Mapped[str] = mapped_column(String(8))
    sealed_identity: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # the KYC applicant this identity was submitted with: its verdict is the borrower's KYC status (null: none)
    applicant_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditEntryRow(Base):
    """One audit log entry. Written unsealed (``seq``, ``prev_hash``, ``entry_hash`` empty) by the transaction that
    does what it records; sealing numbers and chains it (``compliance.audit``). Never updated after that."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(128), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True, nullable=True)
    prev_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    entry_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)


class AuditHeadRow(Base):
    """The sealed log's head (one row, ``id`` 1): its row lock orders sealers across processes."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    entry_hash: Mapped[str] = mapped_column(String(66))
    sealed_at: Mapped[datetime] = mapped_column(UtcDateTime())


# Core INSERTs on the tables, built once (an INSERT of an ORM entity goes through the ORM's bulk machinery and
# generates the statement's cache key on every call): the credit request's write runs them as executemany.
INSERT_DECISIONS: Insert = insert(cast(Table, ComplianceDecisionRow.__table__))
INSERT_AUDIT_ENTRIES: Insert = insert(cast(Table, AuditEntryRow.__table__))


def audit_columns(kind: AuditKind, subject: str, data: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    return {"kind": kind.value, "subject": subject[:128], "data": audit_data(data), "recorded_at": now}


def _entry(row: AuditEntryRow) -> AuditEntry:
    assert row.seq is not None
    assert row.prev_hash is not None
    assert row.entry_hash is not None
    return AuditEntry(row.seq, row.kind, row.subject, dict(row.data), row.recorded_at, row.prev_hash, row.entry_hash)


class SqlAuditLog:
    """``compliance.audit.AuditLog`` over a Session; never commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def append(self, kind: AuditKind, subject: str, data: Mapping[str, Any], now: datetime) -> None:
        self.session.add(AuditEntryRow(**audit_columns(kind, subject, data, now)))

    def insert_all(self, items: Sequence[AuditItem]) -> None:
        """``append`` for many entries as one plain INSERT (executemany), run at once and in order (see
        ``SqlDecisionRepository.insert_all`` for when that is right)."""
        if items:
            self.session.flush()
            self.session.connection().execute(INSERT_AUDIT_ENTRIES, [audit_columns(*item) for item in items])

    def _locked_head(self) -> AuditHeadRow:
        if self.session.get(AuditHeadRow, 1) is None:
            try:
                with self.session.begin_nested():
                    self.session.add(AuditHeadRow(id=1, seq=0, entry_hash="", sealed_at=datetime.now(UTC)))
            except IntegrityError:
                pass  # created by another sealer: the row lock below orders us after it
        return self.session.scalars(
            select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update().execution_options(populate_existing=True)
        ).one()

    def seal(self, limit: int = 10_000) -> int:
        """Number and chain up to ``limit`` unsealed entries after the head, holding the head's row lock."""
        head = self._locked_head()
        pending_rows = list(
            self.session.scalars(
                select(AuditEntryRow).where(AuditEntryRow.seq.is_(None)).order_by(AuditEntryRow.id).limit(limit)
            )
        )
        if not pending_rows:
            return 0
        start = None if head.seq == 0 else (head.seq, head.entry_hash)
        pending = [PendingEntry(r.id, r.kind, r.subject, r.data, r.recorded_at) for r in pending_rows]
        by_id = {row.id: row for row in pending_rows}
        sealed = seal(start, pending)
        for row_id, entry in sealed:
            row = by_id[row_id]
            row.seq, row.prev_hash, row.entry_hash = entry.seq, entry.prev_hash, entry.entry_hash
        head.seq, head.entry_hash = sealed[-1][1].seq, sealed[-1][1].entry_hash
        head.sealed_at = datetime.now(UTC)
        self.session.flush()
        return len(sealed)

    def entries(self, after_seq: int = 0) -> list[AuditEntry]:
        """The sealed entries after ``after_seq`` in order; one holding a value its column cannot (a ``recorded_at``
        of ``'yesterday'``, ``data`` that is no JSON) comes as ``unreadable``, for ``verify`` to name it."""
        sealed = (AuditEntryRow.seq.is_not(None), AuditEntryRow.seq > after_seq)
        unreadable = {int(u.row_id): u for u in unreadable_values(self.session, AuditEntryRow, *sealed)}
        rows = self.session.scalars(
            select(AuditEntryRow).where(*sealed, AuditEntryRow.id.not_in(unreadable)).order_by(AuditEntryRow.seq)
        )
        found = [_entry(row) for row in rows]
        if unreadable:
            kept = select(
                AuditEntryRow.id, AuditEntryRow.seq, AuditEntryRow.kind, AuditEntryRow.subject, AuditEntryRow.prev_hash
            )
            for row_id, seq, kind, subject, prev_hash, entry_hash in self.session.execute(
                kept.add_columns(AuditEntryRow.entry_hash).where(AuditEntryRow.id.in_(unreadable))
            ):
                why = f"{unreadable[row_id].column} holds {unreadable[row_id].value!r}"
                placeholder = datetime.fromtimestamp(0, UTC)
                found.append(AuditEntry(seq, kind, subject, {}, placeholder, prev_hash, entry_hash, why))
            found.sort(key=lambda entry: entry.seq)
        return found

    def pending(self) -> int:
        return int(self.session.scalar(select(func.count(AuditEntryRow.id)).where(AuditEntryRow.seq.is_(None))) or 0)

    def head(self) -> tuple[int, str] | None:
        row = self.session.get(AuditHeadRow, 1)
        return None if row is None or row.seq == 0 else (row.seq, row.entry_hash)


class ReconciliationRunRow(Base):
    """One reconciliation run: who ran it, each chain's block range, summary and counts per category, the digest of
    its result (``compliance.reconcile.result_digest``)."""

    __tablename__ = "reconciliation_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    started_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # running | done | failed
    chains: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # per chain: range, facts, counts, pools
    counts: Mapped[dict[str, int]] = mapped_column(JSON)  # per category, all chains
    digest: Mapped[str | None] = mapped_column(String(66), nullable=True)
    error: Mapped[str | None] = mapped_column(String(512), nullable=True)


class DiscrepancyRow(Base):
    """One discrepancy of a run (matched facts are only counted). ``id`` is the run's id and the item's position,
    so a run's items page in order over (created_at, id)."""

    __tablename__ = "reconciliation_discrepancies"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("reconciliation_runs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    chain_name: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(128))
    what: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(1000))
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    record_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)


@dataclass(frozen=True, slots=True)
class DiscrepancyFilter:
    chain_name: str | None = None
    category: str | None = None


class SqlReconciliationRepository:
    """Reconciliation runs and their discrepancies in the caller's session; never commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def start(self, run_id: str, started_by: str, now: datetime) -> None:
        self.session.add(
            ReconciliationRunRow(
                id=run_id, started_by=started_by[:128], created_at=now, status="running", chains=[], counts={}
            )
        )

    def finish(self, run_id: str, results: Sequence[ChainResult], digest: str, now: datetime) -> ReconciliationRunRow:
        run = self.session.get(ReconciliationRunRow, run_id)
        assert run is not None
        run.status, run.finished_at, run.digest = "done", now, digest
        run.chains = [result.summary() for result in results]
        totals: dict[str, int] = {}
        for result in results:
            for category, count in result.counts.items():
                totals[category] = totals.get(category, 0) + count
        run.counts = totals
        rows = [
            {
                "id": f"{run_id}:{position:07d}",
                "run_id": run_id,
                "created_at": run.created_at,
                "chain_name": item.chain_name,
                "category": item.category.value,
                "subject": item.subject[:SUBJECT_CHARS],
                "what": item.what[:WHAT_CHARS],
                "detail": item.detail[:DETAIL_CHARS],
                "tx_hash": item.tx_hash,
                "block_number": item.block_number,
                "record_ref": item.record_ref,
            }
            for position, item in enumerate((item for result in results for item in result.items), start=1)
        ]
        if rows:
            self.session.execute(insert(DiscrepancyRow), rows)
        return run

    def fail(self, run_id: str, error: str, now: datetime) -> bool:
        """The run ``failed`` with ``error`` — only while it is running: a run that finished (``done``, its audit
        entry written) is not turned into a failed one by a cancellation that came after (verify would call it
        altered). Whether it was marked failed."""
        run = self.session.get(ReconciliationRunRow, run_id)
        if run is not None and run.status == "running":
            run.status, run.finished_at, run.error = "failed", now, error[:512]
            return True
        return False

    def get(self, run_id: str) -> ReconciliationRunRow | None:
        return self.session.get(ReconciliationRunRow, run_id)

    def page(self, after: tuple[datetime, str] | None, limit: int) -> list[ReconciliationRunRow]:
        """Runs newest first after the cursor ``after``."""
        query = select(ReconciliationRunRow)
        if after is not None:
            created_at, run_id = after
            query = query.where(
                or_(
                    ReconciliationRunRow.created_at < created_at,
                    and_(ReconciliationRunRow.created_at == created_at, ReconciliationRunRow.id < run_id),
                )
            )
        order = (ReconciliationRunRow.created_at.desc(), ReconciliationRunRow.id.desc())
        return list(self.session.scalars(query.order_by(*order).limit(limit)))

    def discrepancies(
        self, run_id: str, wanted: DiscrepancyFilter, after: tuple[datetime, str] | None, limit: int | None
    ) -> list[DiscrepancyRow]:
        """A run's discrepancies in their order, after the cursor ``after`` (its items share the run's time)."""
        query = select(DiscrepancyRow).where(DiscrepancyRow.run_id == run_id)
        if wanted.chain_name is not None:
            query = query.where(DiscrepancyRow.chain_name == wanted.chain_name)
        if wanted.category is not None:
            query = query.where(DiscrepancyRow.category == wanted.category)
        if after is not None:
            query = query.where(DiscrepancyRow.id > after[1])
        query = query.order_by(DiscrepancyRow.id)
        return list(self.session.scalars(query if limit is None else query.limit(limit)))

    def last_ranges(self, chains: Collection[str] = ()) -> dict[str, int]:
        """Each chain's last reconciled block in the newest finished run that read it (an incremental run starts
        after it): a run of one chain leaves the others where their own last run left them (taking only the newest
        run, the others were read again from their deployment). ``chains``: stop once these are found."""
        wanted, found = set(chains), dict[str, int]()
        runs = self.session.execute(
            select(ReconciliationRunRow.id, type_coerce(ReconciliationRunRow.chains, String()))
            .where(ReconciliationRunRow.status == "done")
            .order_by(ReconciliationRunRow.created_at.desc())
        )
        for run_id, stored in runs:
            ranges = _ranges_of(stored)
            if ranges is None:  # altered outside the platform: the run before it says where to go on
                said = "reconciliation run %s: its chains (%.60r) cannot be read; --since-last passes it by"
                log.error(said, run_id, stored)
                continue
            for chain, to_block in ranges:
                found.setdefault(chain, to_block)
            if wanted and wanted <= found.keys():
                break
        return found


def _ranges_of(stored: Any) -> list[tuple[str, int]] | None:
    """A run's stored ``chains`` (JSON text as SQLite gives it; PostgreSQL's driver parses its JSON itself) as (chain,
    its last block) pairs; None when it is not the list of objects with ``chain`` and an integer ``toBlock`` a run
    writes."""
    try:
        ran = json.loads(stored) if isinstance(stored, str | bytes) else stored
    except ValueError:
        return None
    if not isinstance(ran, list):
        return None
    pairs = []
    for chain in ran:
        if not isinstance(chain, dict) or not isinstance(chain.get("toBlock"), int) or "chain" not in chain:
            return None
        pairs.append((str(chain["chain"]), chain["toBlock"]))
    return pairs
