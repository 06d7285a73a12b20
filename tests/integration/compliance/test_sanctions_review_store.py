"""The review queue's store on a real database: a screening that holds opens one review per SDN entry (and one per
identity whose name could not be screened), in the transaction that stores the decisions; a second screening of the
same entry version (or identity) reuses it; verdicts come back as the borrower's prior reviews."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from api.cli import main
from compliance import BorrowerFacts, ComplianceService, load_newest, load_rules
from compliance.sanctions.ofac import parse_csv_set
from compliance.sanctions.review import PriorReview, ReviewState, ReviewVerdict
from compliance.sanctions.screening import SanctionsScreen
from store.accepts import SqlScreeningLog
from store.borrowers import SqlBorrowerRepository
from store.compliance import SqlDecisionRepository
from store.db import Database
from store.sanctions_reviews import SanctionsReviewRow, SqlSanctionsReviewRepository, record_screening
from tests.support.screening import screen_accept
from tests.unit.compliance.test_ofac_import import ADD, ALT, SDN

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def test_a_held_screening_opens_one_review_per_entry_once(tmp_path: Path) -> None:
    addresses, _ = load_newest()
    screen = SanctionsScreen(addresses, parse_csv_set(SDN, ALT, ADD, date(2026, 11, 20)))  # a small list: quick
    service = ComplianceService(screen, load_rules(), clock=lambda: NOW, inputs_key=bytes(range(32)))
    held = screen_accept(service, BorrowerFacts("b-1", "0x" + "12" * 20, "Dmitriy Kovalenko", "US-FL"), "quote-1")
    database = Database(f"sqlite:///{tmp_path / 'reviews.db'}")
    database.migrate()
    try:
        with database.unit_of_work() as uow:
            first = record_screening(uow.session, [held], "b-1", screen.name_list_version, NOW)
            uow.commit()
        again = screen_accept(service, BorrowerFacts("b-1", "0x" + "12" * 20, "Dmitriy Kovalenko", "US-FL"), "q-2")
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
        assert prior == [
            PriorReview(review.ent_num, review.entry_fingerprint, ReviewState.CLEARED, held.screened_identity)
        ]
    finally:
        database.dispose()


def test_an_entry_hit_on_another_identity_of_the_borrower_opens_its_own_review(database: Database) -> None:
    """The borrower verified another name or date of birth since an entry was cleared: the hit on the new identity
    is a review of its own (pending), the clearance stays with the identity it was given for."""
    addresses, _ = load_newest()
    screen = SanctionsScreen(addresses, parse_csv_set(SDN, ALT, ADD, date(2026, 11, 20)))
    service = ComplianceService(screen, load_rules(), clock=lambda: NOW, inputs_key=bytes(range(32)))
    first = BorrowerFacts("b-1", "0x" + "12" * 20, "Dmitriy Kovalenko", "US-FL", date_of_birth=date(1990, 1, 1))
    held = screen_accept(service, first, "quote-1")
    with database.unit_of_work() as uow:
        (review,) = record_screening(uow.session, [held], "b-1", screen.name_list_version, NOW).values()
        SqlSanctionsReviewRepository(uow.session).record_verdict(
            review.id, ReviewVerdict(review.id, ReviewState.CLEARED, "admin:k", "born 1990", NOW), "d-1"
        )
        uow.commit()
    assert review.identity_fingerprint == held.screened_identity == service.identity_fingerprint(first)
    with database.unit_of_work() as uow:
        prior = tuple(SqlSanctionsReviewRepository(uow.session).prior_for("b-1"))
        assert SqlBorrowerRepository(uow.session).prior_reviews("b-1") == list(prior)
    assert screen_accept(service, replace(first, sanctions_reviews=prior), "quote-2").allowed

    other = replace(first, date_of_birth=date(1971, 3, 4), sanctions_reviews=prior)  # verified again
    again = screen_accept(service, other, "quote-3")
    assert not again.allowed
    with database.unit_of_work() as uow:
        (reopened,) = record_screening(uow.session, [again], "b-1", screen.name_list_version, NOW).values()
        uow.commit()
    assert (reopened.ent_num, reopened.entry_fingerprint) == (review.ent_num, review.entry_fingerprint)
    assert reopened.id != review.id
    assert reopened.state == "pending"
    assert reopened.identity_fingerprint == service.identity_fingerprint(other)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'reviews.db'}"
    else:
        schema: Callable[[str], str] = request.getfixturevalue("postgres_schema")
        url = schema("sanctions_review_identity")
    database = Database(url)
    database.migrate()  # the migrations, 0030 among them: the tables as deployed
    yield database
    database.dispose()


def test_a_name_not_screened_opens_one_review_of_the_identity_and_its_verdict_is_for_it_alone(
    database: Database,
) -> None:
    """The accept re-screen of a name in Cyrillic opens a review with no SDN entry, once per identity; its verdict
    comes back as the borrower's prior review for that identity, and the refusal names the review."""
    addresses, _ = load_newest()
    screen = SanctionsScreen(addresses, parse_csv_set(SDN, ALT, ADD, date(2026, 11, 20)))
    service = ComplianceService(screen, load_rules(), clock=lambda: NOW, inputs_key=bytes(range(32)))
    kadyrov = BorrowerFacts("b-1", "0x" + "12" * 20, "Рамзан Кадыров", "US-FL", date_of_birth=date(1976, 10, 5))
    held = screen_accept(service, kadyrov, "quote-1")
    reasons = SqlScreeningLog(database).record([held], "b-1", screen.name_list_version, NOW)
    again = screen_accept(service, kadyrov, "quote-2")
    with database.unit_of_work() as uow:
        second = record_screening(uow.session, [again], "b-1", screen.name_list_version, NOW)
        uow.commit()
    (review,) = second.values()
    assert (review.kind, review.ent_num, review.outcome, review.state) == (
        "name-not-screened",
        None,
        "not-screened",
        "pending",
    )
    assert (review.listed_name, review.primary_name, review.program, review.score) == (None, None, None, None)
    assert review.entry_fingerprint == held.unscreened_identity
    assert review.decision_id == held.decision_id  # opened once, by the first screening
    ((code, message),) = reasons
    assert code == "sanctions.name-not-screened"
    assert f"(review {review.id})" in message
    with database.unit_of_work() as uow:
        reviews = SqlSanctionsReviewRepository(uow.session)
        assert [r.id for r in reviews.page(ReviewState.PENDING, None, 10)] == [review.id]  # in the admins' queue
        reviews.record_verdict(
            review.id, ReviewVerdict(review.id, ReviewState.CLEARED, "admin:k", "passport", NOW), "d"
        )
        uow.commit()
    with database.unit_of_work() as uow:
        prior = SqlSanctionsReviewRepository(uow.session).prior_for("b-1")
        assert SqlBorrowerRepository(uow.session).prior_reviews("b-1") == prior
    assert prior == [PriorReview(None, review.entry_fingerprint, ReviewState.CLEARED, review.entry_fingerprint)]
    cleared = screen_accept(service, replace(kadyrov, sanctions_reviews=tuple(prior)), "quote-3")
    assert cleared.allowed

    renamed = replace(kadyrov, full_name="Рамзан Кадиров", sanctions_reviews=tuple(prior))  # verified again
    held_again = screen_accept(service, renamed, "quote-4")
    assert not held_again.allowed
    with database.unit_of_work() as uow:
        opened = record_screening(uow.session, [held_again], "b-1", screen.name_list_version, NOW)
        uow.commit()
    (new_review,) = opened.values()
    assert new_review.id != review.id
    assert new_review.state == "pending"
    with database.unit_of_work() as uow:
        duplicate = SanctionsReviewRow(
            id="dup",
            borrower_id="b-1",
            kind="name-not-screened",
            ent_num=None,
            entry_fingerprint=new_review.entry_fingerprint,
            list_version="v",
            outcome="not-screened",
            state="pending",
            decision_id="d",
            created_at=NOW,
        )
        uow.session.add(duplicate)
        with pytest.raises(IntegrityError):
            uow.session.flush()  # one review per identity, also against a concurrent writer


def test_the_cli_lists_the_queue_with_names_not_screened(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    addresses, _ = load_newest()
    screen = SanctionsScreen(addresses, parse_csv_set(SDN, ALT, ADD, date(2026, 11, 20)))
    service = ComplianceService(screen, load_rules(), clock=lambda: NOW, inputs_key=bytes(range(32)))
    url = f"sqlite:///{tmp_path / 'creditmesh.db'}"
    database = Database(url)
    database.migrate()
    try:
        for borrower_id, name in (("b-1", "Dmitriy Kovalenko"), ("b-2", "Рамзан Кадыров")):
            held = screen_accept(service, BorrowerFacts(borrower_id, "0x" + "12" * 20, name, "US-FL"), "q")
            SqlScreeningLog(database).record([held], borrower_id, screen.name_list_version, NOW)
    finally:
        database.dispose()
    main(["sanctions", "reviews", "--database-url", url])
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[-1] == "2 reviews (pending, newest first, at most 50)"
    (unscreened,) = [line for line in lines if "borrower b-2" in line]
    assert "pending  name-not-screened  borrower b-2: name not screened in Latin script, not-screened" in unscreened
    (hit,) = [line for line in lines if "borrower b-1" in line]
    assert "sdn-entry  borrower b-1: SDN entry 9001 'KOVALENKO, Dmytro Ivanovych'" in hit
    assert "Кадыров" not in printed  # by borrower id: no personal data
    main(["sanctions", "reviews", "--state", "cleared", "--database-url", url])
    assert capsys.readouterr().out.splitlines() == ["0 reviews (cleared, newest first, at most 50)"]
    with pytest.raises(SystemExit, match="no database"):
        main(["sanctions", "reviews", "--database-url", f"sqlite:///{tmp_path / 'elsewhere.db'}"])


def test_two_screenings_of_one_identity_at_once_share_one_review(
    postgres_schema: Callable[[str], str],
) -> None:
    """A credit request and an accept re-screen the same identity at once: the second's INSERT waits for the first's
    transaction and then finds its review (it was refused by the unique index, a 500, on the code before)."""
    database = Database(postgres_schema("sanctions_review_race"))
    database.migrate()
    try:
        with database.unit_of_work() as uow, ThreadPoolExecutor(max_workers=1) as pool:
            opened = SqlSanctionsReviewRepository(uow.session).open_unscreened("b-9", "f" * 64, "d-1", "v1", NOW)
            second = pool.submit(_open_unscreened, database, "d-2")
            time.sleep(0.5)  # the second screening's INSERT waits on the first's uncommitted row
            assert not second.done()
            uow.commit()
            assert second.result(timeout=30) == opened.id
    finally:
        database.dispose()


def _open_unscreened(database: Database, decision_id: str) -> str:
    with database.unit_of_work() as uow:
        review = SqlSanctionsReviewRepository(uow.session).open_unscreened("b-9", "f" * 64, decision_id, "v1", NOW)
        uow.commit()
    return review.id
