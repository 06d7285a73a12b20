"""Migration 0033 ties the reviews of SDN entry hits to the identity screened: a review stored before it keeps no
identity (its clearance clears nothing again, its confirmation still blocks), a name-not-screened review takes its own
fingerprint as its identity, and a second identity's review of the same entry version can be stored, on SQLite and on
PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from compliance.sanctions.review import PriorReview, ReviewState
from store.db import MIGRATIONS_DIR, Database
from store.sanctions_reviews import SqlSanctionsReviewRepository

pytestmark = pytest.mark.integration

AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'creditmesh.db'}")
    else:
        schema: Callable[[str], str] = request.getfixturevalue("postgres_schema")
        database = Database(schema("review_hit_identity"))
    yield database
    database.dispose()


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
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with fresh.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0032_quote_provider_ref")
        _insert(connection, "r-cleared", 7, "f7", "cleared")
        _insert(connection, "r-confirmed", 8, "f8", "confirmed")
        _insert(connection, "r-identity", None, "i" * 64, "cleared")
        command.upgrade(config, "head")
        _insert(connection, "r-pending", 7, "f7", "pending")  # no identity either: the old key would refuse it
        connection.execute(text("UPDATE sanctions_reviews SET identity_fingerprint = 'new' WHERE id = 'r-pending'"))
    with fresh.unit_of_work() as uow:
        prior = sorted(SqlSanctionsReviewRepository(uow.session).prior_for("b-1"), key=lambda p: p.ent_num or 0)
    assert prior == [
        PriorReview(None, "i" * 64, ReviewState.CLEARED, "i" * 64),
        PriorReview(7, "f7", ReviewState.CLEARED, None),
        PriorReview(8, "f8", ReviewState.CONFIRMED, None),
    ]
