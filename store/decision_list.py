"""The decisions list (``GET /v1/decisions``): risk decisions and compliance decision records read as one list,
newest first, a page at a time over (decided_at, id), filtered by borrower, credit request, kind, outcome and time.
A read model: nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from compliance.decisions import DecisionKind, Outcome
from store.aggregator import CreditRequestRow
from store.compliance import ComplianceDecisionRow
from store.db import Database
from store.risk import RiskDecisionRow

RISK_KIND = "risk"
#: the compliance decisions whose subject is the borrower (the others are about an address or a lender's offer)
BORROWER_SUBJECTS = frozenset(
    {DecisionKind.CREDIT_REQUEST, DecisionKind.ACCEPTANCE, DecisionKind.KYC, DecisionKind.SANCTIONS_REVIEW}
)


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    """Every field set narrows the list; ``decided_after`` is inclusive, ``decided_before`` exclusive."""

    borrower_id: str | None = None
    request_id: str | None = None
    kind: str | None = None  # RISK_KIND or a compliance DecisionKind value
    outcome: Outcome | None = None
    decided_after: datetime | None = None
    decided_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class ListedDecision:
    id: str
    kind: str
    subject_ref: str
    borrower_id: str | None
    request_id: str | None
    outcome: Outcome
    reasons: list[dict[str, Any]]
    versions: dict[str, str]
    inputs_hash: str
    record_hash: str
    decided_at: datetime
    risk: dict[str, Any] | None  # a risk decision's figures: score, grade, probability of default, limits


class SqlDecisionList:
    def __init__(self, session: Session) -> None:
        self.session = session

    def page(self, filters: DecisionFilter, after: tuple[datetime, str] | None, limit: int) -> list[ListedDecision]:
        """Up to ``limit`` decisions newest first (decided_at, then id, descending), after the cursor ``after``: each
        table's page read on its own, then merged."""
        decisions: list[ListedDecision] = []
        if filters.kind in (None, RISK_KIND):
            decisions += self._risk(filters, after, limit)
        if filters.kind != RISK_KIND:
            decisions += self._compliance(filters, after, limit)
        decisions.sort(key=lambda decision: (decision.decided_at, decision.id), reverse=True)
        return decisions[:limit]

    def _risk(self, filters: DecisionFilter, after: tuple[datetime, str] | None, limit: int) -> list[ListedDecision]:
        if filters.outcome is Outcome.REVIEW:
            return []  # a risk decision approves or declines
        query = select(RiskDecisionRow)
        if filters.borrower_id is not None:
            query = query.where(RiskDecisionRow.borrower_id == filters.borrower_id)
        if filters.request_id is not None:
            query = query.where(RiskDecisionRow.request_id == filters.request_id)
        if filters.outcome is not None:
            query = query.where(RiskDecisionRow.approved.is_(filters.outcome is Outcome.ALLOW))
        query = query.where(*_window(RiskDecisionRow.decided_at, RiskDecisionRow.id, filters, after))
        rows = self.session.scalars(
            query.order_by(RiskDecisionRow.decided_at.desc(), RiskDecisionRow.id.desc()).limit(limit)
        )
        return [_risk_decision(row) for row in rows]

    def _compliance(
        self, filters: DecisionFilter, after: tuple[datetime, str] | None, limit: int
    ) -> list[ListedDecision]:
        query = select(ComplianceDecisionRow, CreditRequestRow.borrower_id).outerjoin(
            CreditRequestRow, CreditRequestRow.id == ComplianceDecisionRow.request_id
        )
        if filters.borrower_id is not None:
            about_borrower = and_(
                ComplianceDecisionRow.kind.in_([kind.value for kind in BORROWER_SUBJECTS]),
                ComplianceDecisionRow.subject_ref == filters.borrower_id,
            )
            query = query.where(or_(about_borrower, CreditRequestRow.borrower_id == filters.borrower_id))
        if filters.request_id is not None:
            query = query.where(ComplianceDecisionRow.request_id == filters.request_id)
        if filters.kind is not None:
            query = query.where(ComplianceDecisionRow.kind == filters.kind)
        if filters.outcome is not None:
            query = query.where(ComplianceDecisionRow.outcome == filters.outcome.value)
        query = query.where(
            *_window(ComplianceDecisionRow.decided_at, ComplianceDecisionRow.decision_id, filters, after)
        )
        rows = self.session.execute(
            query.order_by(ComplianceDecisionRow.decided_at.desc(), ComplianceDecisionRow.decision_id.desc()).limit(
                limit
            )
        )
        return [_compliance_decision(row, request_borrower) for row, request_borrower in rows]


def _window(
    decided_at: Any, row_id: Any, filters: DecisionFilter, after: tuple[datetime, str] | None
) -> list[ColumnElement[bool]]:
    """The time filters and the cursor, as conditions on a table's (decided_at, id)."""
    conditions: list[ColumnElement[bool]] = []
    if filters.decided_after is not None:
        conditions.append(decided_at >= filters.decided_after)
    if filters.decided_before is not None:
        conditions.append(decided_at < filters.decided_before)
    if after is not None:
        moment, last_id = after
        conditions.append(or_(decided_at < moment, and_(decided_at == moment, row_id < last_id)))
    return conditions


def _risk_decision(row: RiskDecisionRow) -> ListedDecision:
    return ListedDecision(
        id=row.id,
        kind=RISK_KIND,
        subject_ref=row.borrower_id,
        borrower_id=row.borrower_id,
        request_id=row.request_id,
        outcome=Outcome.ALLOW if row.approved else Outcome.DENY,
        reasons=[{"code": r.get("code", ""), "message": r.get("text", "")} for r in row.reasons],
        versions={"model": row.model_version, "policy": row.policy_version},
        inputs_hash=row.inputs_hash,
        record_hash=row.decision_hash,
        decided_at=row.decided_at,
        risk={
            "score": row.score,
            "grade": row.grade,
            "pd": row.pd,
            "max_ltv_bps": row.max_ltv_bps,
            "max_amount": row.max_amount,
            "spread_bps": row.spread_bps,
        },
    )


def _compliance_decision(row: ComplianceDecisionRow, request_borrower: str | None) -> ListedDecision:
    about_borrower = row.kind in {kind.value for kind in BORROWER_SUBJECTS}
    return ListedDecision(
        id=row.decision_id,
        kind=row.kind,
        subject_ref=row.subject_ref,
        borrower_id=row.subject_ref if about_borrower else request_borrower,
        request_id=row.request_id,
        outcome=Outcome(row.outcome),
        reasons=[dict(reason) for reason in row.reasons],
        versions=dict(row.versions),
        inputs_hash=row.inputs_hash,
        record_hash=row.record_hash,
        decided_at=row.decided_at,
        risk=None,
    )


class SqlDecisions:
    """The decisions list for the API: each page read in a unit of work of its own on the read-only URL when one is
    set (a report read)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def page(self, filters: DecisionFilter, after: tuple[datetime, str] | None, limit: int) -> list[ListedDecision]:
        with self._db.read_only() as uow:
            return SqlDecisionList(uow.session).page(filters, after, limit)
