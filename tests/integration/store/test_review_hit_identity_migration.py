"""Migration 0033 ties the reviews of SDN entry hits to the identity screened: a review stored before it keeps no
identity (its clearance clears nothing again, its confirmation still blocks), a name-not-screened review takes its own
fingerprint as its identity, and a second identity's review of the same entry version can be stored, on SQLite and on
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from compliance.sanctions.review import PriorReview, ReviewState
from store.db import Database
from store.sanctions_reviews import SqlSanctionsReviewRepository
from tests.support.migrations import upgrade

pytestmark = pytest.mark.integration

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _insert(connection: object, review_id: str, ent_num: int | None, fingerprint: str, state: str) -> None:
    connection.execute(  # type: ignore[attr-defined]
        text(
            "INSERT INTO sanctions_reviews (id, borrower_id, kind, ent_num, entry_fingerprint, list_version, "
            "outcome, state, decision_id, created_at) VALUES (:id, 'b-1', :kind, :ent_num, :fingerprint, 'v', "
            "'possible-match', :state, 'd', :at)"
        ),
        {
            "id": review_id,
            "kind": "sdn-entry" if ent_num is not None else "name-not-screened",
            "ent_num": ent_num,
            "fingerprint": fingerprint,
            "state": state,
            "at": AT,
        },
    )


def test_reviews_stored_before_0033_keep_no_identity_and_clear_nothing(fresh: Database) -> None:
    with fresh.engine.begin() as connection:
        upgrade(connection, "0032_quote_provider_ref")
        _insert(connection, "r-cleared", 7, "f7", "cleared")
        _insert(connection, "r-confirmed", 8, "f8", "confirmed")
        _insert(connection, "r-identity", None, "i" * 64, "cleared")
        upgrade(connection, "head")
        _insert(connection, "r-pending", 7, "f7", "pending")  # no identity either: the old key would refuse it
        connection.execute(text("UPDATE sanctions_reviews SET identity_fingerprint = 'new' WHERE id = 'r-pending'"))
    with fresh.unit_of_work() as uow:
        prior = sorted(SqlSanctionsReviewRepository(uow.session).prior_for("b-1"), key=lambda p: p.ent_num or 0)
    assert prior == [
        PriorReview(None, "i" * 64, ReviewState.CLEARED, "i" * 64),
        PriorReview(7, "f7", ReviewState.CLEARED, None),
        PriorReview(8, "f8", ReviewState.CONFIRMED, None),
    ]
