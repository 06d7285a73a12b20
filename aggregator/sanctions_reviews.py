"""The sanctions review queue: name hits held for a person, their evidence, and the reviewer's verdict.

A credit request whose name screen holds (possible match) or blocks (near-exact match) the borrower opens one review
per SDN entry hit, in the unit of work that stores the screening decisions. An admin reads the evidence — the
borrower's name as screened now (unsealed from the identity), the entry's names and aliases, the score at the time
and how the parts paired — and clears or confirms it; the verdict is a decision record of its own. A cleared entry
is not held again for the borrower's identity (name and date of birth) until OFAC changes the entry or the borrower
verifies another identity (``compliance.sanctions.review``).

A name the screen could not spell in Latin letters opens a review too, of the borrower's identity rather than of an
entry (``ReviewKind.NAME_NOT_SCREENED``): the reviewer reads the name as screened and clears or confirms it like any
other review, and the verdict holds for that identity (name and date of birth) only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from aggregator.borrowers import Borrowers
from aggregator.errors import ReviewAlreadyDecided, ReviewNotFound
from aggregator.sanctions_review_store import SanctionsReview, SanctionsReviewStore
from compliance import ComplianceService, DecisionRecord
from compliance.decisions import DecisionKind, decide
from compliance.jurisdiction import Reason
from compliance.sanctions.lists import ListedName
from compliance.sanctions.review import ReviewKind, ReviewState, ReviewVerdict, ScreeningOutcome
from compliance.sanctions.screening import NameHit, normalize_evm_address
from compliance.service import NAME_MATCH, NAME_NOT_SCREENED, NAME_POSSIBLE_MATCH
from risk.reasons import MAX_REASONS

REVIEW_PENDING = "sanctions.review-pending"
REVIEW_CONFIRMED = "sanctions.review-confirmed"
#: the order a refused borrower is told the screening's reasons in, by code prefix: the sanctions lists, where the
#: platform lends, the age of majority, the amounts it lends, then the KYC tier (which the borrower may raise)
TOLD_FIRST = ("sanctions.", "jurisdiction.", "kyc.under-age", "amount.", "kyc.")
#: the decisions that screen a borrower's name and wallet against the OFAC lists
SCREENING_KINDS = frozenset({DecisionKind.CREDIT_REQUEST, DecisionKind.ACCEPTANCE})


@dataclass(frozen=True)
class ReviewEvidence:
    review: SanctionsReview
    query: str | None  # the borrower's name as screened now; None once the identity is erased
    entry: tuple[ListedName, ...]  # the entry's names on the current list (primary first); empty when delisted
    current: NameHit | None  # the query against the entry on the current list: score and why
    entry_changed: bool  # the entry on the current list, or the identity on file, differs from the reviewed


#: what a borrower is told of their screening (``GET /v1/borrowers/me``'s ``sanctions_screening.status``)
ScreeningState = Literal["not-yet-screened", "clear", "held-for-review", "blocked"]


@dataclass(frozen=True)
class ScreeningStatus:
    """What a borrower is told about their sanctions screening."""

    status: ScreeningState
    reason: str | None
    reviews: tuple[SanctionsReview, ...]


def borrower_reasons(records: Sequence[DecisionRecord], review_ids: Iterable[str]) -> list[tuple[str, str]]:
    """The reasons a refused borrower sees: a name hit is told as a review (held or blocked) with its id, without
    the listed party's name; every other reason as recorded. Each once, in a fixed order (``TOLD_FIRST``: what no
    borrower can change before what they can), the records' order within a kind, and at most ``MAX_REASONS``: they
    were a set sorted by code, as many as there were, and an under-age borrower read its KYC tier before its age."""
    reasons: dict[tuple[str, str], None] = {}  # insertion-ordered, each once
    reviews = ", ".join(sorted(review_ids))
    for record in records:
        for reason in record.reasons:
            if reason.code == NAME_POSSIBLE_MATCH:
                reasons.setdefault(
                    (
                        REVIEW_PENDING,
                        f"held for a compliance review of a possible match on the OFAC sanctions list (review "
                        f"{reviews}); you can request credit again once a reviewer has cleared it",
                    )
                )
            elif reason.code == NAME_NOT_SCREENED:
                reasons.setdefault(
                    (
                        NAME_NOT_SCREENED,
                        f"{reason.message} (review {reviews}); you can request credit again once a reviewer has "
                        "cleared it",
                    )
                )
            elif reason.code == NAME_MATCH:
                reasons.setdefault(
                    (
                        NAME_MATCH,
                        f"refused: the name matches an entry on the OFAC sanctions list (review {reviews}); "
                        "contact support if you are not the listed party",
                    )
                )
            else:
                reasons.setdefault((reason.code, reason.message))
    told = sorted(reasons, key=lambda reason: _told_rank(reason[0]))  # stable: the records' order within a kind
    return told[:MAX_REASONS]


def _told_rank(code: str) -> int:
    """Where a reason of ``code`` comes in what a refused borrower is told (``TOLD_FIRST``; others last)."""
    return next((rank for rank, prefix in enumerate(TOLD_FIRST) if code.startswith(prefix)), len(TOLD_FIRST))


class SanctionsReviews:
    def __init__(
        self,
        store: SanctionsReviewStore,
        borrowers: Borrowers,
        compliance: ComplianceService,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store, self._borrowers, self._compliance, self._clock = store, borrowers, compliance, clock

    def page(self, state: ReviewState | None, after: tuple[datetime, str] | None, limit: int) -> list[SanctionsReview]:
        with self._store.unit_of_work() as uow:
            return uow.reviews.page(state, after, limit)

    def _row(self, review_id: str) -> SanctionsReview:
        with self._store.unit_of_work() as uow:
            row = uow.reviews.get(review_id)
        if row is None:
            raise ReviewNotFound(review_id)
        return row

    def evidence(self, review_id: str) -> ReviewEvidence:
        row = self._row(review_id)
        borrower = self._borrowers.load(row.borrower_id)
        query = borrower.full_name if borrower is not None and borrower.identity is not None else None
        if row.ent_num is None:  # a name not screened: the identity reviewed, no entry to pair it with
            current_identity = (
                None
                if borrower is None or borrower.identity is None
                else self._compliance.identity_fingerprint(borrower.facts())
            )
            return ReviewEvidence(row, query, (), None, current_identity != row.entry_fingerprint)
        screen = self._compliance.screen
        entry = screen.entry(row.ent_num)
        current = screen.explain(query, row.ent_num) if query and entry else None
        identity = (
            None if query is None or borrower is None else self._compliance.identity_fingerprint(borrower.facts())
        )
        changed = (
            screen.names.entry_fingerprint(row.ent_num) != row.entry_fingerprint or identity != row.identity_fingerprint
        )
        return ReviewEvidence(row, query, entry, current, changed)

    def decide(self, review_id: str, state: ReviewState, reviewer: str, note: str) -> SanctionsReview:
        """Clear or confirm a pending review; the verdict is recorded as a decision record in the same unit of work.

        Raises:
            ReviewNotFound: no such review.
            ReviewAlreadyDecided: the review was cleared or confirmed before.
            ComplianceInputError: a verdict without a note, or one that leaves the review pending.
        """
        now = self._clock()
        verdict = ReviewVerdict(review_id, state, reviewer, note, now)
        with self._store.unit_of_work() as uow:
            row = uow.reviews.get(review_id, for_update=True)
            if row is None:
                raise ReviewNotFound(review_id)
            if row.state != ReviewState.PENDING.value:
                raise ReviewAlreadyDecided(review_id, row.state)
            record = self._verdict_record(row, verdict)
            uow.decisions.add(record)
            decided = uow.reviews.record_verdict(review_id, verdict, record.decision_id)
            uow.commit()
        self._borrowers.forget(decided.borrower_id)  # the verdict is part of the borrower's file
        return decided

    def _verdict_record(self, row: SanctionsReview, verdict: ReviewVerdict) -> DecisionRecord:
        inputs: dict[str, object] = {"reviewId": row.id}
        if row.ent_num is None:  # a name not screened in Latin script: the verdict is on the identity screened
            inputs |= {"kind": ReviewKind.NAME_NOT_SCREENED.value, "identityFingerprint": row.entry_fingerprint}
            confirmed = (
                "a reviewer found that the name, which could not be screened in Latin script, is a listed party's "
                "(or cannot be told apart from one)"
            )
        else:
            inputs |= {"entNum": row.ent_num, "entryFingerprint": row.entry_fingerprint}
            if row.identity_fingerprint is not None:
                inputs["identityFingerprint"] = row.identity_fingerprint
            confirmed = f"a reviewer confirmed the match with SDN entry {row.ent_num} ({row.program})"
        inputs |= {"listVersion": row.list_version, "screeningDecisionId": row.decision_id}
        if row.score is not None:
            inputs["score"] = format(row.score, ".2f")
        inputs |= {"state": verdict.state.value, "reviewer": verdict.reviewer, "note": verdict.note}
        deny = [Reason(REVIEW_CONFIRMED, confirmed)] if verdict.state is ReviewState.CONFIRMED else []
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

    def _identity_on_file(self, borrower_id: str) -> str | None:
        """The fingerprint of the borrower's identity on file (None: no account, or no identity: never verified or
        erased)."""
        borrower = self._borrowers.load(borrower_id)
        if borrower is None or borrower.identity is None:
            return None
        return self._compliance.identity_fingerprint(borrower.facts())

    @staticmethod
    def _standing(rows: tuple[SanctionsReview, ...], current: str | None) -> tuple[SanctionsReview, ...]:
        """The reviews that bear on the borrower as identified now (``current``: the identity on file): a confirmed
        SDN entry whatever identity it was given for (fail closed, as the screen does), else only the reviews of the
        identity on file — a review of another identity (the borrower verified again since), or of none (stored
        before reviews were tied to an identity), neither holds nor clears."""
        return tuple(
            r
            for r in rows
            if (r.ent_num is not None and r.state == ReviewState.CONFIRMED.value)
            or (r.entry_fingerprint if r.ent_num is None else r.identity_fingerprint) == current
        )

    @staticmethod
    def _screened(identities: set[str | None], rows: tuple[SanctionsReview, ...], current: str | None) -> bool:
        """Whether a screening covered the identity on file, ``current`` (``identities``: those the borrower's
        screening decisions record; ``rows``: the borrower's reviews, each opened by a screening of its identity).
        Decisions record the identity they screened since migration 0034, so once one does, the identities they name
        decide: an identity verified since (``POST /me/kyc``) was not screened yet, whatever the clocks of the
        processes that stored it and the decisions. Decisions recorded before name none: while a borrower has only
        such, any counts, as before (which identity they screened is not known); so does any decision or review for
        a borrower with no identity on file."""
        if current is None:
            return bool(identities or rows)
        if any((r.entry_fingerprint if r.ent_num is None else r.identity_fingerprint) == current for r in rows):
            return True
        return current in identities if identities - {None} else bool(identities)

    def status(self, borrower_id: str, wallet: str) -> ScreeningStatus:
        """What the borrower is told: blocked when ``wallet`` is on the current OFAC address list (it is refused on
        every credit request, and no review is opened for it) or a name hit blocks; held for review while a review
        stands; not yet screened before a credit request or acceptance screened the identity on file (the borrower's
        first, or the first since they verified another identity); else clear."""
        current = self._identity_on_file(borrower_id)
        with self._store.unit_of_work() as uow:
            rows = tuple(uow.reviews.for_borrower(borrower_id))
            identities = uow.decisions.screened_identities(borrower_id, SCREENING_KINDS)
        # the list as loaded now, whatever its age: a listed wallet is refused however stale the list (fail closed)
        listed = self._compliance.screen.addresses.lookup(normalize_evm_address(wallet))
        if listed:
            programs = ", ".join(sorted({entry.program for entry in listed}))
            return ScreeningStatus(
                "blocked",
                f"your wallet is on the OFAC sanctions list ({programs}); credit cannot be offered to it",
                rows,
            )
        standing = self._standing(rows, current)
        blocked = [
            r
            for r in standing
            if r.state == ReviewState.CONFIRMED.value
            or (r.state == ReviewState.PENDING.value and r.outcome == ScreeningOutcome.MATCH.value)
        ]
        pending = [r for r in standing if r.state == ReviewState.PENDING.value]
        if blocked:
            ids = ", ".join(r.id for r in blocked)
            return ScreeningStatus(
                "blocked",
                f"your name matches an entry on the OFAC sanctions list (review {ids}); credit cannot be offered",
                rows,
            )
        if pending:
            ids = ", ".join(r.id for r in pending)
            why = (
                "a possible match on the OFAC sanctions list is being reviewed"
                if any(r.ent_num is not None for r in pending)
                else "your name could not be screened in Latin script against the OFAC sanctions list and is being "
                "reviewed"
            )
            return ScreeningStatus(
                "held-for-review",
                f"{why} (review {ids}); you can request credit again once a reviewer has cleared it",
                rows,
            )
        if not self._screened(identities, rows, current):
            reason = (
                "the name and date of birth you verified last have not been screened against the OFAC sanctions list "
                "yet: they are at your next credit request"
                if identities or rows
                else "your name has not been screened against the OFAC sanctions list yet: it is at your first credit "
                "request"
            )
            return ScreeningStatus("not-yet-screened", reason, rows)
        return ScreeningStatus("clear", None, rows)
