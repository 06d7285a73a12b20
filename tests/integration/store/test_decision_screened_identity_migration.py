"""Migration 0034 keeps the identity a screening decision screened beside the record (``screened_identity``): a
decision recorded before it keeps none and its record hash still verifies; one recorded after keeps its identity,
through the ORM and the credit request's bulk insert alike, outside the hashed body, on SQLite and on PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from compliance.decisions import DecisionKind, decide
from store.compliance import SqlDecisionRepository
from store.db import Database
from tests.support.migrations import upgrade

pytestmark = pytest.mark.integration

AT = datetime(2026, 1, 1, tzinfo=UTC)
SCREENING = (DecisionKind.CREDIT_REQUEST, DecisionKind.ACCEPTANCE)


def test_a_screening_decision_keeps_the_identity_it_screened_outside_its_hash(fresh: Database) -> None:
    before = decide(DecisionKind.CREDIT_REQUEST, "b-1", {"fullName": "Jane Roe"}, [], {"rules": "1"}, AT)
    with fresh.engine.begin() as connection:
        upgrade(connection, "0033_review_hit_identity")
        connection.execute(
            text(
                "INSERT INTO compliance_decisions (decision_id, kind, subject_ref, outcome, reasons, versions, "
                "inputs_hash, record_hash, decided_at) VALUES (:id, 'credit-request', 'b-1', 'allow', '[]', "
                '\'{"rules": "1"}\', :inputs, :record, :at)'
            ),
            {"id": before.decision_id, "inputs": before.inputs_hash, "record": before.record_hash(), "at": AT},
        )
        upgrade(connection, "head")

    screened = decide(DecisionKind.ACCEPTANCE, "b-1", {}, [], {}, AT, screened_identity="a" * 64)
    bulk = decide(DecisionKind.CREDIT_REQUEST, "b-1", {}, [], {}, AT, screened_identity="b" * 64)
    other = decide(DecisionKind.OFFER, "b-1", {}, [], {}, AT, screened_identity="c" * 64)
    with fresh.unit_of_work() as uow:
        decisions = SqlDecisionRepository(uow.session)
        decisions.add(screened)
        decisions.add(other)
        decisions.insert_all([bulk], "request-1")
        uow.commit()
    with fresh.unit_of_work() as uow:
        decisions = SqlDecisionRepository(uow.session)
        old = decisions.get(before.decision_id)
        assert old is not None
        assert old.screened_identity is None
        assert old.record_hash() == decisions.stored_hash(before.decision_id) == before.record_hash()
        kept = decisions.get(screened.decision_id)
        assert kept is not None
        assert kept.screened_identity == "a" * 64
        assert kept.record_hash() == decisions.stored_hash(screened.decision_id)
        assert kept.record_hash() == replace(screened, screened_identity=None).record_hash()  # not in the body
        assert decisions.screened_identities("b-1", SCREENING) == {None, "a" * 64, "b" * 64}
        assert decisions.screened_identities("b-2", SCREENING) == set()
