"""The sanctions review queue's service on the in-memory store: what a borrower is told (clear, held, blocked), a
verdict given once and recorded as a decision record, and the evidence a reviewer reads."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from aggregator.borrowers import BorrowerFile
from aggregator.errors import ReviewAlreadyDecided, ReviewNotFound
from aggregator.sanctions_review_store import InMemorySanctionsReviewStore, SanctionsReview
from aggregator.sanctions_reviews import REVIEW_CONFIRMED, SanctionsReviews, ScreeningStatus
from compliance.decisions import DecisionKind, Outcome, decide
from compliance.jurisdiction import Reason, load_rules
from compliance.kyc import IdentityProfile
from compliance.sanctions.review import ReviewState, ScreeningOutcome
from compliance.sanctions.screening import SanctionsScreen
from compliance.service import ComplianceService
from risk.profile import CreditProfile
from tests.support.screening import screen_accept

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 26, tzinfo=UTC)
WALLET = "0x" + "11" * 20
SANCTIONED = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96"  # Lazarus Group (DPRK3) on the shipped address list
HELD_NAME = IdentityProfile("Mazen", "Hussein", date(1985, 1, 1), "US-FL")


class _Files:
    """The borrower files a reviewer's evidence reads the screened name from."""

    def __init__(self) -> None:
        self.files: dict[str, BorrowerFile] = {}
        self.forgotten: list[str] = []

    def load(self, borrower_id: str) -> BorrowerFile | None:
        return self.files.get(borrower_id)

    def forget(self, borrower_id: str) -> None:
        self.forgotten.append(borrower_id)


@pytest.fixture
def service(screen: SanctionsScreen) -> ComplianceService:
    return ComplianceService(screen, load_rules(), clock=lambda: NOW, inputs_key=bytes(range(32)))


def _review(n: int, borrower_id: str = "b1", **changes: object) -> SanctionsReview:
    review = SanctionsReview(
        id=f"r{n}",
        borrower_id=borrower_id,
        ent_num=100 + n,
        entry_fingerprint="f",
        list_version="sdn@test",
        listed_name="LISTED",
        primary_name="LISTED",
        program="SDGT",
        score=88.0,
        outcome=ScreeningOutcome.POSSIBLE_MATCH.value,
        state=ReviewState.PENDING.value,
        decision_id=f"d{n}",
        created_at=NOW + timedelta(minutes=n),
    )
    return replace(review, **changes)  # type: ignore[arg-type]


def _queue(
    service: ComplianceService, *reviews: SanctionsReview
) -> tuple[SanctionsReviews, InMemorySanctionsReviewStore]:
    store = InMemorySanctionsReviewStore()
    store.tables.reviews.update((review.id, review) for review in reviews)
    return SanctionsReviews(store, _Files(), service, clock=lambda: NOW), store  # type: ignore[arg-type]


def test_a_borrower_is_clear_held_or_blocked_by_its_reviews(service: ComplianceService) -> None:
    queue, _ = _queue(service, _review(1, state=ReviewState.CLEARED.value), _review(2, borrower_id="other"))
    assert queue.status("b1", WALLET).status == "clear"
    assert queue.status("nobody", WALLET).reviews == ()

    queue, _ = _queue(service, _review(1), _review(2, state=ReviewState.CLEARED.value))
    held = queue.status("b1", WALLET)
    assert (held.status, [r.id for r in held.reviews]) == ("held-for-review", ["r2", "r1"])  # newest first
    assert held.reason is not None
    assert "review r1)" in held.reason

    pending_match = _review(3, outcome=ScreeningOutcome.MATCH.value)
    queue, _ = _queue(service, _review(1), pending_match, _review(4, state=ReviewState.CONFIRMED.value))
    blocked = queue.status("b1", WALLET)
    assert blocked.status == "blocked"
    assert blocked.reason is not None
    assert "review r3, r4)" in blocked.reason or "review r4, r3)" in blocked.reason


def test_a_borrower_no_credit_request_screened_is_not_yet_screened_then_clear(service: ComplianceService) -> None:
    queue, store = _queue(service)
    unscreened = queue.status("b1", WALLET)
    assert (unscreened.status, unscreened.reviews) == ("not-yet-screened", ())
    assert unscreened.reason is not None
    assert "first credit request" in unscreened.reason

    store.tables.decisions.add(decide(DecisionKind.OFFER, "b1", {}, [], {}, NOW))  # not a screening
    assert queue.status("b1", WALLET).status == "not-yet-screened"
    store.tables.decisions.add(decide(DecisionKind.CREDIT_REQUEST, "b1", {}, [], {}, NOW))
    assert queue.status("b1", WALLET) == ScreeningStatus("clear", None, ())
    assert queue.status("b2", WALLET).status == "not-yet-screened"  # another borrower's screening


def test_an_identity_verified_since_the_last_screening_is_not_yet_screened(service: ComplianceService) -> None:
    """The borrower re-verifies (POST /me/kyc) with another name or date of birth: no screening decision covered it
    until the next credit request screens it, whatever the decisions' times; a screening records its identity."""
    queue, store = _queue(service)
    verified = replace(HELD_NAME, first_name="Jane", last_name="Roe")
    _with_file(queue, verified)
    screened = screen_accept(service, _file(verified).facts(), "quote-1")
    assert screened.outcome is Outcome.ALLOW
    assert screened.screened_identity == service.identity_fingerprint(_file(verified).facts())
    store.tables.decisions.add(screened)
    assert queue.status("b1", WALLET).status == "clear"

    reverified = replace(verified, date_of_birth=date(1990, 5, 5))
    _with_file(queue, reverified)
    unscreened = queue.status("b1", WALLET)
    assert unscreened.status == "not-yet-screened"
    assert unscreened.reason is not None
    assert "verified last" in unscreened.reason
    store.tables.decisions.add(replace(screened, decided_at=NOW + timedelta(days=1)))  # later, the old identity
    assert queue.status("b1", WALLET).status == "not-yet-screened"

    store.tables.decisions.add(screen_accept(service, _file(reverified).facts(), "quote-2"))  # the next one
    assert queue.status("b1", WALLET).status == "clear"
    _with_file(queue, HELD_NAME)  # an identity no screening covered
    assert queue.status("b1", WALLET).status == "not-yet-screened"


def test_decisions_recorded_before_they_named_an_identity_count_until_one_does(service: ComplianceService) -> None:
    """A decision recorded before 0034 names no identity: while the borrower has only such, it counts as before; the
    first one naming an identity decides from then on."""
    queue, store = _queue(service)
    _with_file(queue, HELD_NAME)
    store.tables.decisions.add(decide(DecisionKind.CREDIT_REQUEST, "b1", {}, [], {}, NOW))  # no identity recorded
    assert queue.status("b1", WALLET).status == "clear"
    store.tables.decisions.add(decide(DecisionKind.ACCEPTANCE, "b1", {}, [], {}, NOW, screened_identity="another"))
    assert queue.status("b1", WALLET).status == "not-yet-screened"


@pytest.mark.parametrize("form", [SANCTIONED, SANCTIONED.lower()])
def test_a_wallet_on_the_address_list_is_blocked_though_no_review_names_it(
    service: ComplianceService, form: str
) -> None:
    # refused on every credit request (``sanctions.address``) without a review: before and after one, with a
    # cleared name review, the borrower reads blocked with the reason
    queue, store = _queue(service)
    for _ in range(2):
        blocked = queue.status("b1", form)
        assert blocked.status == "blocked"
        assert blocked.reason is not None
        assert "wallet is on the OFAC sanctions list (DPRK3)" in blocked.reason
        store.tables.decisions.add(
            decide(DecisionKind.CREDIT_REQUEST, "b1", {}, [Reason("sanctions.address", "")], {}, NOW)
        )
    store.tables.reviews["r1"] = _review(1, state=ReviewState.CLEARED.value)
    assert queue.status("b1", form).status == "blocked"
    assert queue.status("b1", WALLET).status == "clear"


def test_a_verdict_is_given_once_and_recorded_as_a_decision(service: ComplianceService) -> None:
    queue, store = _queue(service, _review(1), _review(2))
    with pytest.raises(ReviewNotFound):
        queue.decide("nope", ReviewState.CLEARED, "admin", "other birth date")

    cleared = queue.decide("r1", ReviewState.CLEARED, "admin", "other birth date")
    assert (cleared.state, cleared.reviewer, cleared.note, cleared.reviewed_at) == (
        "cleared",
        "admin",
        "other birth date",
        NOW,
    )
    assert store.tables.reviews["r1"] == cleared
    assert queue._borrowers.forgotten == ["b1"], "a copy kept of the borrower's file is stale now"  # type: ignore[attr-defined]
    record = store.tables.decisions.get(cleared.review_decision_id or "")
    assert record is not None
    assert (record.kind, record.subject_ref, record.outcome, record.reasons) == (
        DecisionKind.SANCTIONS_REVIEW,
        "b1",
        Outcome.ALLOW,
        (),
    )
    with pytest.raises(ReviewAlreadyDecided):
        queue.decide("r1", ReviewState.CONFIRMED, "admin", "second thoughts")
    assert store.tables.reviews["r1"] == cleared, "the first verdict stands"

    confirmed = queue.decide("r2", ReviewState.CONFIRMED, "admin", "same birth date")
    denied = store.tables.decisions.get(confirmed.review_decision_id or "")
    assert denied is not None
    assert denied.outcome is Outcome.DENY
    assert [reason.code for reason in denied.reasons] == [REVIEW_CONFIRMED]
    assert len(store.tables.decisions.records) == 2
    assert [r.id for r in queue.page(ReviewState.PENDING, None, 10)] == []
    assert [r.id for r in queue.page(None, None, 1)] == ["r2"]
    assert [r.id for r in queue.page(None, (confirmed.created_at, confirmed.id), 10)] == ["r1"]


def test_the_evidence_is_the_name_as_screened_now_against_the_entry_on_the_current_list(
    service: ComplianceService,
) -> None:
    file = BorrowerFile("b1", WALLET, "US-FL", HELD_NAME, None, CreditProfile())  # type: ignore[arg-type]
    held = screen_accept(service, file.facts(), "quote-1")
    ((hit, outcome), *_) = held.name_hits
    review = _review(
        1,
        ent_num=hit.ent_num,
        entry_fingerprint=hit.entry_fingerprint,
        outcome=outcome.value,
        identity_fingerprint=held.screened_identity,
    )
    older = replace(review, id="r-old", entry_fingerprint="an older version")
    before = replace(review, id="r-before", identity_fingerprint="another identity of the borrower")
    queue, _ = _queue(service, review, older, before)
    files: _Files = queue._borrowers  # type: ignore[assignment]
    files.files["b1"] = file

    evidence = queue.evidence("r1")
    assert evidence.review == review
    assert evidence.query == "Mazen Hussein"
    assert evidence.entry
    assert evidence.current is not None
    assert evidence.current.ent_num == hit.ent_num
    assert not evidence.entry_changed
    assert queue.evidence("r-old").entry_changed
    assert queue.evidence("r-before").entry_changed  # the borrower verified another name or date of birth since

    files.files["b1"] = replace(file, identity=None)  # erased: no name to show
    erased = queue.evidence("r1")
    assert (erased.query, erased.current) == (None, None)
    with pytest.raises(ReviewNotFound):
        queue.evidence("nope")


# --- a name not screened in Latin script: a review of the borrower's identity, no SDN entry ----------------------

CYRILLIC = IdentityProfile("Рамзан", "Кадыров", date(1976, 10, 5), "US-FL")


def _unscreened(
    service: ComplianceService, identity: IdentityProfile, n: int = 1, **changes: object
) -> SanctionsReview:
    file = BorrowerFile("b1", WALLET, "US-FL", identity, None, CreditProfile())  # type: ignore[arg-type]
    fingerprint = service.identity_fingerprint(file.facts())
    review = _review(n, ent_num=None, entry_fingerprint=fingerprint, listed_name=None, primary_name=None)
    return replace(review, program=None, score=None, outcome="not-screened", kind="name-not-screened", **changes)  # type: ignore[arg-type]


def _file(identity: IdentityProfile | None) -> BorrowerFile:
    return BorrowerFile("b1", WALLET, "US-FL", identity, None, CreditProfile())  # type: ignore[arg-type]


def _with_file(queue: SanctionsReviews, identity: IdentityProfile | None) -> None:
    files: _Files = queue._borrowers  # type: ignore[assignment]
    files.files["b1"] = _file(identity)


def test_a_name_not_screened_is_reviewed_as_the_identity_it_was_screened_with(service: ComplianceService) -> None:
    review = _unscreened(service, CYRILLIC)
    queue, store = _queue(service, review)
    _with_file(queue, CYRILLIC)
    evidence = queue.evidence("r1")
    assert (evidence.query, evidence.entry, evidence.current, evidence.entry_changed) == (
        "Рамзан Кадыров",
        (),
        None,
        False,
    )
    held = queue.status("b1", WALLET)
    assert held.status == "held-for-review"
    assert held.reason is not None
    assert "could not be screened in Latin script" in held.reason
    assert "review r1)" in held.reason

    cleared = queue.decide("r1", ReviewState.CLEARED, "admin:key-1", "passport read: not a listed party")
    assert (cleared.state, cleared.reviewer) == ("cleared", "admin:key-1")
    record = store.tables.decisions.get(cleared.review_decision_id or "")
    assert record is not None
    assert (record.kind, record.subject_ref, record.outcome) == (DecisionKind.SANCTIONS_REVIEW, "b1", Outcome.ALLOW)
    assert queue.status("b1", WALLET).status == "clear"


def test_a_confirmed_name_not_screened_blocks_that_identity_only(service: ComplianceService) -> None:
    queue, store = _queue(service, _unscreened(service, CYRILLIC))
    _with_file(queue, CYRILLIC)
    confirmed = queue.decide("r1", ReviewState.CONFIRMED, "admin:key-1", "the listed party's passport")
    denied = store.tables.decisions.get(confirmed.review_decision_id or "")
    assert denied is not None
    assert (denied.outcome, [r.code for r in denied.reasons]) == (Outcome.DENY, [REVIEW_CONFIRMED])
    assert queue.status("b1", WALLET).status == "blocked"

    renamed = replace(CYRILLIC, last_name="Кадиров")  # verified again as someone else: another identity
    _with_file(queue, renamed)
    # the verdict was on the other identity: nothing stands, and no screening has covered this one yet
    assert queue.status("b1", WALLET).status == "not-yet-screened"
    assert queue.evidence("r1").entry_changed
    _with_file(queue, None)  # erased
    assert queue.evidence("r1").entry_changed
