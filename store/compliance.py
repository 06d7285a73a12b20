"""Persistence for ``compliance``: decision records, KYC applicants, webhook deliveries seen, sealed identities. The
subject data keys are not here: they live in a key store apart from this database (``store.keystore``,
``compliance.kms``), so no backup of it can open the sealed identities.

Repositories take a Session and never commit; the unit of work does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, LargeBinary, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from compliance.decisions import DecisionKind, DecisionRecord, Outcome
from compliance.jurisdiction import Reason
from compliance.kyc import KycState, KycStatus, KycTier
from store.base import Base
from store.types import UtcDateTime


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


class KycApplicantRow(Base):
    __tablename__ = "compliance_kyc_applicants"

    applicant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    tier: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WebhookDeliveryRow(Base):
    __tablename__ = "compliance_webhook_deliveries"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


def _reasons_out(reasons: tuple[Reason, ...]) -> list[dict[str, Any]]:
    return [{"code": r.code, "message": r.message, "citation": r.citation} for r in reasons]


def _reasons_in(rows: list[dict[str, Any]]) -> tuple[Reason, ...]:
    return tuple(Reason(r["code"], r["message"], r.get("citation")) for r in rows)


class SqlDecisionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, record: DecisionRecord) -> None:
        self.session.add(
            ComplianceDecisionRow(
                decision_id=record.decision_id,
                kind=record.kind.value,
                subject_ref=record.subject_ref,
                outcome=record.outcome.value,
                reasons=_reasons_out(record.reasons),
                versions=dict(record.versions),
                inputs_hash=record.inputs_hash,
                record_hash=record.record_hash(),
                decided_at=record.decided_at,
                pii_sealed=record.pii_sealed,
            )
        )

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

    def get(self, applicant_id: str) -> KycStatus | None:
        row = self.session.get(KycApplicantRow, applicant_id)
        return None if row is None else self._status(row)

    def latest_for_subject(self, subject_id: str) -> KycStatus | None:
        row = self.session.scalars(
            select(KycApplicantRow)
            .where(KycApplicantRow.subject_id == subject_id)
            .order_by(KycApplicantRow.updated_at.desc())
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
        )


class SqlReplayGuard:
    """Webhook event ids seen, across processes: the primary key refuses a second delivery."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def remember(self, event_id: str, received_at: datetime) -> bool:
        try:
            with self.session.begin_nested():
                self.session.add(WebhookDeliveryRow(event_id=event_id, received_at=received_at))
        except IntegrityError:
            return False
        return True


class BorrowerIdentityRow(Base):
    """The borrower's identity profile (names, date of birth), sealed with AES-GCM under the subject's data key:
    destroying the key (erasure) leaves only ciphertext."""

    __tablename__ = "compliance_identities"

    subject_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    country: Mapped[str] = mapped_column(String(8))
    sealed_identity: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
