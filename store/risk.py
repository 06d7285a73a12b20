"""Persistence owned by ``risk/``: every risk decision, with its inputs hash and versions (no PII: the profile
itself is not stored here, only the hash that commits to it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Boolean, Index, Insert, Integer, String, Table, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from compliance.audit import AuditKind
from risk.policy import RiskDecision
from risk.repository import StoredDecision
from store.base import Base
from store.compliance import INSERT_AUDIT_ENTRIES, AuditItem, SqlAuditLog, audit_columns
from store.types import UtcDateTime


class RiskDecisionRow(Base):
    __tablename__ = "risk_decisions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    borrower_id: Mapped[str] = mapped_column(String(64), index=True)
    request_id: Mapped[str | None] = mapped_column(String(36), index=True, nullable=True)
    approved: Mapped[bool] = mapped_column(Boolean)
    score: Mapped[int] = mapped_column(Integer)
    grade: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pd: Mapped[str] = mapped_column(String(32))
    max_ltv_bps: Mapped[int] = mapped_column(Integer)
    max_amount: Mapped[str] = mapped_column(String(80))
    spread_bps: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    model_version: Mapped[str] = mapped_column(String(32))
    policy_version: Mapped[str] = mapped_column(String(32))
    inputs_hash: Mapped[str] = mapped_column(String(66), index=True)
    # Not unique: the same profile and request decide the same way twice (the hash is of the decision itself).
    decision_hash: Mapped[str] = mapped_column(String(66), index=True)
    decision: Mapped[dict[str, Any]] = mapped_column(JSON)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_risk_decisions_decided_at_id", "decided_at", "id"),)


#: a Core INSERT on the table, built once (see ``store.compliance.INSERT_DECISIONS``)
INSERT_RISK_DECISION: Insert = insert(cast(Table, RiskDecisionRow.__table__))


def risk_rows(stored: StoredDecision) -> tuple[dict[str, Any], AuditItem]:
    """The decision's row and its audit entry (the decision dumped and hashed once per decision, for both and for
    the request's risk summary)."""
    decision = stored.decision
    document = decision.document()
    decision_hash = "0x" + decision.decision_hash().hex()
    columns = {
        "id": stored.id,
        "borrower_id": stored.borrower_id,
        "request_id": stored.request_id,
        "approved": decision.approved,
        "score": decision.score,
        "grade": decision.grade,
        "pd": document["pd"],
        "max_ltv_bps": decision.max_ltv_bps,
        "max_amount": document["max_amount"],
        "spread_bps": decision.spread_bps,
        "reasons": document["reasons"],
        "model_version": decision.model_version,
        "policy_version": decision.policy_version,
        "inputs_hash": decision.inputs_hash,
        "decision_hash": decision_hash,
        "decision": document,
        "decided_at": stored.decided_at,
    }
    data = {
        "decisionId": stored.id,
        "requestId": stored.request_id,
        "approved": decision.approved,
        "decisionHash": decision_hash,
    }
    return columns, (AuditKind.RISK_DECISION, stored.borrower_id, data, stored.decided_at)


class SqlRiskDecisionRepository:
    """``risk.repository.RiskDecisionRepository`` over a Session; never commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, stored: StoredDecision) -> None:
        columns, audit = risk_rows(stored)
        self.session.add(RiskDecisionRow(**columns))
        SqlAuditLog(self.session).append(*audit)

    def insert(self, stored: StoredDecision) -> None:
        """``add`` as plain INSERTs run at once, not at the flush (see ``SqlDecisionRepository.insert_all``)."""
        columns, audit = risk_rows(stored)
        self.session.flush()
        connection = self.session.connection()
        connection.execute(INSERT_RISK_DECISION, columns)
        connection.execute(INSERT_AUDIT_ENTRIES, audit_columns(*audit))

    def get(self, decision_id: str) -> StoredDecision | None:
        row = self.session.get(RiskDecisionRow, decision_id)
        return None if row is None else _stored(row)

    def for_borrower(self, borrower_id: str) -> list[StoredDecision]:
        rows = self.session.scalars(
            select(RiskDecisionRow)
            .where(RiskDecisionRow.borrower_id == borrower_id)
            .order_by(RiskDecisionRow.decided_at, RiskDecisionRow.id)
        )
        return [_stored(row) for row in rows]


def _stored(row: RiskDecisionRow) -> StoredDecision:
    return StoredDecision(
        id=row.id,
        borrower_id=row.borrower_id,
        request_id=row.request_id,
        decision=RiskDecision.model_validate(row.decision),
        decided_at=row.decided_at,
    )


class CreditProfileRow(Base):
    """The borrower's latest credit profile (risk owns it): the answers a lender asks, as given through the API."""

    __tablename__ = "credit_profiles"

    borrower_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
