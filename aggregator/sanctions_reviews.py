"""The sanctions review queue: name hits held for a person, their evidence, and the reviewer's verdict.

A credit request whose name screen holds (possible match) or blocks (near-exact match) the borrower opens one review
per SDN entry hit, in the unit of work that stores the screening decisions. An admin reads the evidence — the
borrower's name as screened now (unsealed from the identity), the entry's names and aliases, the score at the time
and how the parts paired — and clears or confirms it; the verdict is a decision record of its own. A cleared entry
is not held again for the borrower until OFAC changes the entry (``compliance.sanctions.review``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from aggregator.borrowers import Borrowers
from aggregator.errors import ReviewAlreadyDecided, ReviewNotFound
from compliance import ComplianceService, DecisionRecord
from compliance.decisions import DecisionKind, decide
from compliance.jurisdiction import Reason
from compliance.sanctions.lists import ListedName
from compliance.sanctions.review import ReviewState, ReviewVerdict, ScreeningOutcome
from compliance.sanctions.screening import NameHit
from compliance.service import NAME_MATCH, NAME_POSSIBLE_MATCH
from store.compliance import SqlDecisionRepository
from store.db import Database
from store.sanctions_reviews import SanctionsReviewRow, SqlSanctionsReviewRepository

REVIEW_PENDING = "sanctions.review-pending"
REVIEW_CONFIRMED = "sanctions.review-confirmed"


@dataclass(frozen=True)
class ReviewEvidence:
    review: SanctionsReviewRow
    query: str | None  # the borrower's name as screened now; None once the identity is erased
    entry: tuple[ListedName, ...]  # the entry's names on the current list (primary first); empty when delisted
    current: NameHit | None  # the query against the entry on the current list: score and why
    entry_changed: bool  # the entry on the current list differs from the one reviewed


@dataclass(frozen=True)
class ScreeningStatus:
    """What a borrower is told about their sanctions screening."""

    status: str  # clear, held-for-review, blocked
    reason: str | None
    reviews: tuple[SanctionsReviewRow, ...]


def record_screening(
    session: Session, records: Sequence[DecisionRecord], borrower_id: str, list_version: str, now: datetime
) -> dict[int, SanctionsReviewRow]:
    """Store screening decision records and open a review for each SDN entry that held or blocked them, in the
    caller's unit of work (the credit request's refusal, the acceptance's re-screen)."""
    repository = SqlDecisionRepository(session)
    for record in records:
        repository.add(record)
    session.flush()
    return open_reviews(session, records, borrower_id, list_version, now)


def open_reviews(
    session: Session, records: Sequence[DecisionRecord], borrower_id: str, list_version: str, now: datetime
) -> dict[int, SanctionsReviewRow]:
    """One review per SDN entry that held or blocked these screening decisions (in the caller's unit of work)."""
    repository = SqlSanctionsReviewRepository(session)
    opened: dict[int, SanctionsReviewRow] = {}
    for record in records:
        for hit, outcome in record.name_hits:
            if hit.ent_num not in opened:
                opened[hit.ent_num] = repository.open(borrower_id, hit, outcome, record.decision_id, list_version, now)
    return opened


def borrower_reasons(records: Sequence[DecisionRecord], review_ids: Iterable[str]) -> list[tuple[str, str]]:
    """The reasons a refused borrower sees: a name hit is told as a review (held or blocked) with its id, without
    the listed party's name; every other reason as recorded."""
    reasons: set[tuple[str, str]] = set()
    reviews = ", ".join(sorted(review_ids))
    for record in records:
        for reason in record.reasons:
            if reason.code == NAME_POSSIBLE_MATCH:
                reasons.add(
                    (
                        REVIEW_PENDING,
                        f"held for a compliance review of a possible match on the OFAC sanctions list (review "
                        f"{reviews}); you can request credit again once a reviewer has cleared it",
                    )
                )
            elif reason.code == NAME_MATCH:
                reasons.add(
                    (
                        NAME_MATCH,
                        f"refused: the name matches an entry on the OFAC sanctions list (review {reviews}); "
                        "contact support if you are not the listed party",
                    )
                )
            else:
                reasons.add((reason.code, reason.message))
    return sorted(reasons)


class SanctionsReviews:
    def __init__(
        self,
        database: Database,
        borrowers: Borrowers,
        compliance: ComplianceService,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db, self._borrowers, self._compliance, self._clock = database, borrowers, compliance, clock

    def page(
        self, state: ReviewState | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[SanctionsReviewRow]:
        with self._db.unit_of_work() as uow:
            return SqlSanctionsReviewRepository(uow.session).page(state, after, limit)

    def _row(self, review_id: str) -> SanctionsReviewRow:
        with self._db.unit_of_work() as uow:
            row = SqlSanctionsReviewRepository(uow.session).get(review_id)
        if row is None:
            raise ReviewNotFound(review_id)
        return row

    def evidence(self, review_id: str) -> ReviewEvidence:
        row = self._row(review_id)
        borrower = self._borrowers.load(row.borrower_id)
        query = borrower.full_name if borrower is not None and borrower.identity is not None else None
        screen = self._compliance.screen
        entry = screen.entry(row.ent_num)
        current = screen.explain(query, row.ent_num) if query and entry else None
        changed = screen.names.entry_fingerprint(row.ent_num) != row.entry_fingerprint
        return ReviewEvidence(row, query, entry, current, changed)

    def decide(self, review_id: str, state: ReviewState, reviewer: str, note: str) -> SanctionsReviewRow:
        """Clear or confirm a pending review; the verdict is recorded as a decision record in the same unit of work.

        Raises:
            ReviewNotFound: no such review.
            ReviewAlreadyDecided: the review was cleared or confirmed before.
            ComplianceInputError: a verdict without a note, or one that leaves the review pending.
        """
        now = self._clock()
        verdict = ReviewVerdict(review_id, state, reviewer, note, now)
        with self._db.unit_of_work() as uow:
            repository = SqlSanctionsReviewRepository(uow.session)
            row = repository.get(review_id, for_update=True)
            if row is None:
                raise ReviewNotFound(review_id)
            if row.state != ReviewState.PENDING.value:
                raise ReviewAlreadyDecided(review_id, row.state)
            record = self._verdict_record(row, verdict)
            SqlDecisionRepository(uow.session).add(record)
            repository.record_verdict(row, verdict, record.decision_id)
            uow.commit()
            return row

    def _verdict_record(self, row: SanctionsReviewRow, verdict: ReviewVerdict) -> DecisionRecord:
        inputs = {
            "reviewId": row.id,
            "entNum": row.ent_num,
            "entryFingerprint": row.entry_fingerprint,
            "listVersion": row.list_version,
            "screeningDecisionId": row.decision_id,
            "score": format(row.score, ".2f"),
            "state": verdict.state.value,
            "reviewer": verdict.reviewer,
            "note": verdict.note,
        }
        deny = (
            [Reason(REVIEW_CONFIRMED, f"a reviewer confirmed the match with SDN entry {row.ent_num} ({row.program})")]
            if verdict.state is ReviewState.CONFIRMED
            else []
        )
        versions = {self._compliance.screen.names.version.name: row.list_version}
        # the reviewer's note is about the borrower: a personal input, hashed under the platform key
        return decide(
            DecisionKind.SANCTIONS_REVIEW,
            row.borrower_id,
            inputs,
            deny,
            versions,
            verdict.decided_at,
            inputs_key=self._compliance.inputs_key,
        )

    def status(self, borrower_id: str) -> ScreeningStatus:
        with self._db.unit_of_work() as uow:
            rows = tuple(SqlSanctionsReviewRepository(uow.session).for_borrower(borrower_id))
        blocked = [
            r
            for r in rows
            if r.state == ReviewState.CONFIRMED.value
            or (r.state == ReviewState.PENDING.value and r.outcome == ScreeningOutcome.MATCH.value)
        ]
        pending = [r for r in rows if r.state == ReviewState.PENDING.value]
        if blocked:
            ids = ", ".join(r.id for r in blocked)
            return ScreeningStatus(
                "blocked",
                f"your name matches an entry on the OFAC sanctions list (review {ids}); credit cannot be offered",
                rows,
            )
        if pending:
            ids = ", ".join(r.id for r in pending)
            return ScreeningStatus(
                "held-for-review",
                f"a possible match on the OFAC sanctions list is being reviewed (review {ids}); you can request "
                "credit again once a reviewer has cleared it",
                rows,
            )
        return ScreeningStatus("clear", None, rows)
