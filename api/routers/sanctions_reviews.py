"""The sanctions review queue (admins): possible and near-exact name matches held for a person, and names that could
not be screened in Latin script, their evidence, and the verdict — clear (the borrower may request credit again) or
confirm (blocked). Each verdict is a decision record."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request

from aggregator.sanctions_review_store import SanctionsReview
from aggregator.sanctions_reviews import ReviewEvidence
from api.auth import actor_of
from api.deps import AdminPrincipal, PlatformDep
from api.idempotency import Idempotent
from api.pagination import CursorParam, Limit, Page, decode_cursor, page
from api.schemas import ListedNameOut, SanctionsReviewEvidenceOut, SanctionsReviewOut, SanctionsVerdictIn
from compliance.sanctions.review import ReviewState

router = APIRouter(prefix="/v1/admin/sanctions-reviews", tags=["sanctions reviews"])
SANCTIONS_REVIEWS_CURSOR = "sanctions-reviews"  # its cursors name it (another list's is refused)


def review_out(row: SanctionsReview) -> SanctionsReviewOut:
    return SanctionsReviewOut(
        id=row.id,
        borrower_id=row.borrower_id,
        kind=row.kind,
        ent_num=row.ent_num,
        primary_name=row.primary_name,
        listed_name=row.listed_name,
        program=row.program,
        score=row.score,
        outcome=row.outcome,
        state=row.state,
        list_version=row.list_version,
        entry_fingerprint=row.entry_fingerprint,
        decision_id=row.decision_id,
        created_at=row.created_at,
        reviewer=row.reviewer,
        note=row.note,
        reviewed_at=row.reviewed_at,
        review_decision_id=row.review_decision_id,
    )


def _evidence_out(evidence: ReviewEvidence) -> SanctionsReviewEvidenceOut:
    current = evidence.current
    return SanctionsReviewEvidenceOut(
        review=review_out(evidence.review),
        query=evidence.query,
        entry=[
            ListedNameOut(name=n.name, alias_of=n.alias_of, sdn_type=n.sdn_type, program=n.program)
            for n in evidence.entry
        ],
        current_score=None if current is None else current.score,
        why=None if current is None else current.why,
        near_exact=None if current is None else current.near_exact,
        entry_changed=evidence.entry_changed,
    )


@router.get("", response_model=Page[SanctionsReviewOut])
async def list_reviews(
    request: Request,
    _: AdminPrincipal,
    platform: PlatformDep,
    state: Annotated[ReviewState | None, Query(description="pending, cleared or confirmed; all when absent")] = None,
    limit: Limit = 50,
    cursor: CursorParam = None,
) -> Page[SanctionsReviewOut]:
    """The review queue, newest first (``state=pending`` for the work still to do)."""
    after = decode_cursor(
        SANCTIONS_REVIEWS_CURSOR, cursor
    )  # one this API did not issue: 400 invalid-cursor, as on every list
    rows = await asyncio.to_thread(platform.sanctions_reviews.page, state, after, limit + 1)
    return page(request, SANCTIONS_REVIEWS_CURSOR, rows, limit, lambda r: (r.created_at, r.id), review_out)


@router.get("/{review_id}", response_model=SanctionsReviewEvidenceOut)
async def get_review(review_id: str, _: AdminPrincipal, platform: PlatformDep) -> SanctionsReviewEvidenceOut:
    """The evidence: the borrower's name as screened now, the listed entry with its aliases, the score at the time
    and now, which name parts paired and how well."""
    return _evidence_out(await asyncio.to_thread(platform.sanctions_reviews.evidence, review_id))


async def _decide(
    review_id: str, state: ReviewState, principal: AdminPrincipal, platform: PlatformDep, body: SanctionsVerdictIn
) -> SanctionsReviewOut:
    reviewer = actor_of(principal)  # which admin's key (every admin was "admin" before)
    row = await asyncio.to_thread(platform.sanctions_reviews.decide, review_id, state, reviewer, body.note)
    return review_out(row)


@router.post("/{review_id}/clear", response_model=SanctionsReviewOut, dependencies=[Idempotent])
async def clear_review(
    review_id: str, body: SanctionsVerdictIn, principal: AdminPrincipal, platform: PlatformDep
) -> SanctionsReviewOut:
    """Not the listed party: the borrower may request credit again, and is not held again for this entry until
    OFAC changes it (for a name not screened in Latin script: while the borrower's identity stays the one reviewed)."""
    return await _decide(review_id, ReviewState.CLEARED, principal, platform, body)


@router.post("/{review_id}/confirm", response_model=SanctionsReviewOut, dependencies=[Idempotent])
async def confirm_review(
    review_id: str, body: SanctionsVerdictIn, principal: AdminPrincipal, platform: PlatformDep
) -> SanctionsReviewOut:
    """The listed party (or cannot be told apart): the borrower is blocked."""
    return await _decide(review_id, ReviewState.CONFIRMED, principal, platform, body)
