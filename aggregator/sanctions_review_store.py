"""Where the sanctions review queue is kept, as the aggregator sees it: reviews as plain values behind a small
repository interface, with the decision records their verdicts make, a unit of work at a time. The SQL implementation
is ``store.sanctions_reviews``; ``InMemorySanctionsReviewStore`` is the fake for unit tests."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from aggregator.snapshots import SnapshotUnitOfWork, rolled_back_on_exit
from compliance.decisions import DecisionRepository, InMemoryDecisionRepository
from compliance.sanctions.review import ReviewKind, ReviewState, ReviewVerdict


@dataclass(frozen=True, slots=True)
class SanctionsReview:
    """One borrower's hit on one version of an SDN entry, held for a person (no personal data: the borrower by id);
    or (``kind`` name-not-screened) one identity of a borrower whose name could not be screened in Latin script:
    no entry, no listed name and no score, and ``entry_fingerprint`` is the identity's fingerprint
    (``compliance.sanctions.review.identity_fingerprint``)."""

    id: str
    borrower_id: str
    ent_num: int | None
    entry_fingerprint: str
    list_version: str  # the name list the hit was made with
    listed_name: str | None  # the listed name (or alias) that scored best
    primary_name: str | None
    program: str | None
    score: float | None
    outcome: str  # possible-match, match or not-screened
    state: str  # pending, cleared or confirmed
    decision_id: str  # the screening decision that opened it
    created_at: datetime
    reviewer: str | None = None
    note: str | None = None
    reviewed_at: datetime | None = None
    review_decision_id: str | None = None
    kind: str = ReviewKind.SDN_ENTRY.value
    # the identity reviewed (name and date of birth, keyed): a verdict bears on it only; None on reviews stored before
    # reviews were tied to an identity
    identity_fingerprint: str | None = None


class SanctionsReviewRepository(Protocol):
    def get(self, review_id: str, *, for_update: bool = False) -> SanctionsReview | None:
        """``for_update``: locked until the unit of work ends (a verdict is given once)."""
        ...

    def for_borrower(self, borrower_id: str) -> list[SanctionsReview]:
        """Newest first."""
        ...

    def page(self, state: ReviewState | None, after: tuple[datetime, str] | None, limit: int) -> list[SanctionsReview]:
        """Newest first, starting strictly after ``after`` (created_at, id); ``limit`` reviews at most."""
        ...

    def record_verdict(self, review_id: str, verdict: ReviewVerdict, decision_id: str) -> SanctionsReview:
        """The review as decided by ``verdict`` (recorded as the decision record ``decision_id``)."""
        ...


class SanctionsReviewUnitOfWork(Protocol):
    @property
    def reviews(self) -> SanctionsReviewRepository: ...

    @property
    def decisions(self) -> DecisionRepository: ...

    def commit(self) -> None: ...


class SanctionsReviewStore(Protocol):
    """Opens units of work (one database transaction each; leaving without ``commit`` rolls back)."""

    def unit_of_work(self) -> AbstractContextManager[SanctionsReviewUnitOfWork]: ...


# ---------------------------------------------------------------------------------------------- in-memory fake


@dataclass
class _Tables:
    reviews: dict[str, SanctionsReview] = field(default_factory=dict)
    decisions: InMemoryDecisionRepository = field(default_factory=InMemoryDecisionRepository)


def _newest_first(reviews: list[SanctionsReview]) -> list[SanctionsReview]:
    return sorted(reviews, key=lambda review: (review.created_at, review.id), reverse=True)


class InMemorySanctionsReviewRepository:
    def __init__(self, tables: _Tables) -> None:
        self.tables = tables

    def get(self, review_id: str, *, for_update: bool = False) -> SanctionsReview | None:
        return self.tables.reviews.get(review_id)

    def for_borrower(self, borrower_id: str) -> list[SanctionsReview]:
        return _newest_first([r for r in self.tables.reviews.values() if r.borrower_id == borrower_id])

    def page(self, state: ReviewState | None, after: tuple[datetime, str] | None, limit: int) -> list[SanctionsReview]:
        found = _newest_first([r for r in self.tables.reviews.values() if state is None or r.state == state.value])
        if after is not None:
            found = [r for r in found if (r.created_at, r.id) < after]
        return found[:limit]

    def record_verdict(self, review_id: str, verdict: ReviewVerdict, decision_id: str) -> SanctionsReview:
        decided = replace(
            self.tables.reviews[review_id],
            state=verdict.state.value,
            reviewer=verdict.reviewer,
            note=verdict.note,
            reviewed_at=verdict.decided_at,
            review_decision_id=decision_id,
        )
        self.tables.reviews[review_id] = decided
        return decided


class InMemorySanctionsReviewUnitOfWork(SnapshotUnitOfWork):
    def __init__(self, tables: _Tables) -> None:
        super().__init__(tables)
        self.reviews = InMemorySanctionsReviewRepository(tables)
        self.tables = tables

    @property
    def decisions(self) -> InMemoryDecisionRepository:
        return self.tables.decisions


class InMemorySanctionsReviewStore:
    """The fake for unit tests: one process, transactions as snapshots."""

    def __init__(self) -> None:
        self.tables = _Tables()

    def unit_of_work(self) -> AbstractContextManager[InMemorySanctionsReviewUnitOfWork]:
        return rolled_back_on_exit(InMemorySanctionsReviewUnitOfWork(self.tables))
