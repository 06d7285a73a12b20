"""A credit request refused before it is scored (``aggregator.quote_refusals``) is kept as a ``credit-request``
decision record denying it, with its audit entry and no request id (none was written), on SQLite and PostgreSQL:
what ``GET /v1/decisions`` lists an examiner. Before, a velocity stop and a borrower with no identity left nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from aggregator.errors import ComplianceDenied
from aggregator.quote_refusals import VelocityCheck, admit_request, asked_terms
from compliance.decisions import DecisionKind
from risk.errors import VelocityLimitExceeded
from risk.velocity import InMemoryVelocityStore, VelocityLimits
from store.api import BorrowerRow
from store.compliance import AuditEntryRow, ComplianceDecisionRow
from store.db import Database
from store.decision_list import DecisionFilter, SqlDecisions
from store.quoting import SqlQuotingStore
from tests.support.quoting import WALLET, borrower_file

pytestmark = pytest.mark.integration


def _refusals_kept(database: Database) -> None:
    database.migrate()
    with database.unit_of_work() as uow:
        uow.session.add(BorrowerRow(id="b1", wallet_address=WALLET, jurisdiction="US-FL", created_at=datetime.now(UTC)))
        uow.commit()
    store = SqlQuotingStore(database)
    check = VelocityCheck(InMemoryVelocityStore(), VelocityLimits(per_borrower=1), "203.0.113.7", bytes(32))
    asked = asked_terms("1500.00", "USDC", 30)
    unidentified = replace(borrower_file(), identity=None)

    async def ask_twice() -> None:
        with pytest.raises(ComplianceDenied):  # counted, then refused: no identity on file
            await admit_request(store, check, unidentified, asked)
        with pytest.raises(VelocityLimitExceeded):
            await admit_request(store, check, unidentified, asked)

    asyncio.run(ask_twice())

    with database.unit_of_work() as uow:
        rows = uow.session.scalars(select(ComplianceDecisionRow).order_by(ComplianceDecisionRow.decided_at)).all()
        audits = [entry.data["decisionId"] for entry in uow.session.scalars(select(AuditEntryRow)).all()]
    assert [(row.kind, row.outcome, row.subject_ref, row.request_id) for row in rows] == [
        (DecisionKind.CREDIT_REQUEST.value, "deny", "b1", None)
    ] * 2
    assert [row.reasons[0]["code"] for row in rows] == ["kyc.not-approved", "R50"]
    assert sorted(audits) == sorted(row.decision_id for row in rows)
    listed = SqlDecisions(database).page(DecisionFilter(borrower_id="b1", kind="credit-request"), None, 10)
    assert {decision.id for decision in listed} == {row.decision_id for row in rows}


def test_refusals_before_scoring_are_kept_on_sqlite(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'refusals.db'}")
    try:
        _refusals_kept(database)
    finally:
        database.dispose()


def test_refusals_before_scoring_are_kept_on_postgresql(postgres_schema: Callable[[str], str]) -> None:
    database = Database(postgres_schema("refusal_records"))
    try:
        _refusals_kept(database)
    finally:
        database.dispose()
