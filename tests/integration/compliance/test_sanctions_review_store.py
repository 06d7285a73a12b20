"""The review queue's store on a real database: a screening that holds opens one review per SDN entry, in the
transaction that stores the decisions; a second screening of the same entry version reuses it; verdicts come back
as the borrower's prior reviews."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from compliance import BorrowerFacts, ComplianceService, load_newest, load_rules
from compliance.sanctions.ofac import parse_csv_set
from compliance.sanctions.review import PriorReview, ReviewState, ReviewVerdict
from compliance.sanctions.screening import SanctionsScreen
from store.compliance import SqlDecisionRepository
from store.db import Database
from store.sanctions_reviews import SqlSanctionsReviewRepository, record_screening
from tests.unit.compliance.test_ofac_import import ADD, ALT, SDN

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def test_a_held_screening_opens_one_review_per_entry_once(tmp_path: Path) -> None:
    addresses, _ = load_newest()
    screen = SanctionsScreen(addresses, parse_csv_set(SDN, ALT, ADD, date(2026, 11, 20)))  # a small list: quick
    service = ComplianceService(screen, load_rules(), clock=lambda: NOW, inputs_key=bytes(range(32)))
    held = service.screen_acceptance(BorrowerFacts("b-1", "0x" + "12" * 20, "Dmitriy Kovalenko", "US-FL"), "quote-1")
    database = Database(f"sqlite:///{tmp_path / 'reviews.db'}")
    database.migrate()
    try:
        with database.unit_of_work() as uow:
            first = record_screening(uow.session, [held], "b-1", screen.name_list_version, NOW)
            uow.commit()
        again = service.screen_acceptance(BorrowerFacts("b-1", "0x" + "12" * 20, "Dmitriy Kovalenko", "US-FL"), "q-2")
        with database.unit_of_work() as uow:
            second = record_screening(uow.session, [again], "b-1", screen.name_list_version, NOW)
            uow.commit()
        assert [r.id for r in first.values()] == [r.id for r in second.values()]  # the same review, not a new one
        (review,) = first.values()
        with database.unit_of_work() as uow:
            reviews = SqlSanctionsReviewRepository(uow.session)
            assert reviews.prior_for("b-1") == []  # pending: no verdict yet
            row = reviews.get(review.id)
            assert row is not None
            assert row.decision_id == held.decision_id
            assert SqlDecisionRepository(uow.session).get(held.decision_id) is not None  # stored together
            reviews.record_verdict(row.id, ReviewVerdict(row.id, ReviewState.CLEARED, "admin", "other DOB", NOW), "d-1")
            uow.commit()
        with database.unit_of_work() as uow:
            prior = SqlSanctionsReviewRepository(uow.session).prior_for("b-1")
        assert prior == [PriorReview(review.ent_num, review.entry_fingerprint, ReviewState.CLEARED)]
    finally:
        database.dispose()
