"""Where decisions are kept: the small interface ``risk/`` needs, and an in-memory fake.

The SQLAlchemy implementation is ``store.risk.SqlRiskDecisionRepository``; like every repository it takes a
Session and never commits (the unit of work does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from risk.policy import RiskDecision


@dataclass(frozen=True, slots=True)
class StoredDecision:
    id: str
    borrower_id: str
    request_id: str | None
    decision: RiskDecision
    decided_at: datetime


class RiskDecisionRepository(Protocol):
    def add(self, stored: StoredDecision) -> None: ...

    def get(self, decision_id: str) -> StoredDecision | None: ...

    def for_borrower(self, borrower_id: str) -> list[StoredDecision]: ...


class InMemoryRiskDecisionRepository:
    def __init__(self) -> None:
        self.rows: dict[str, StoredDecision] = {}

    def add(self, stored: StoredDecision) -> None:
        self.rows[stored.id] = stored

    def get(self, decision_id: str) -> StoredDecision | None:
        return self.rows.get(decision_id)

    def for_borrower(self, borrower_id: str) -> list[StoredDecision]:
        found = [s for s in self.rows.values() if s.borrower_id == borrower_id]
        return sorted(found, key=lambda s: (s.decided_at, s.id))
