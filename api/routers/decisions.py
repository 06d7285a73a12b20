"""Risk and compliance decisions for auditors and admins: every risk decision (score, grade, limits, reasons) and
every compliance decision record (credit request screening, offer checks, acceptance re-screening, collateral
sources, sanctions review verdicts) as one list, newest first, a page at a time, filtered by borrower, credit
request, kind, outcome and time. Not for borrowers: a record's reasons may name a listed party (a borrower learns its
own outcome and reasons from its credit request and ``GET /v1/borrowers/me``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.deps import AuditorPrincipal, PlatformDep
from api.input_types import Rfc3339DateTime
from api.pagination import DEFAULT_LIMIT, CursorParam, Limit, Page, decode_cursor, page
from compliance.decisions import DecisionKind, Outcome
from store.decision_list import RISK_KIND, DecisionFilter, ListedDecision, SqlDecisions

router = APIRouter(prefix="/v1/decisions", tags=["decisions"])
DECISIONS_CURSOR = "decisions"  # its cursors name it (another list's is refused)

DecisionKindName = StrEnum(  # type: ignore[misc]
    "DecisionKindName", {"RISK": RISK_KIND} | {kind.name: kind.value for kind in DecisionKind}
)


class DecisionOut(BaseModel):
    id: str
    kind: str = Field(description=f"{RISK_KIND} | " + " | ".join(kind.value for kind in DecisionKind))
    subject_ref: str = Field(description="whom or what it is about: a borrower id, an address or a lender's offer ref")
    borrower_id: str | None = Field(description="the borrower it concerns, when known")
    request_id: str | None = Field(description="the credit request it was made for, when it was made for one")
    outcome: str = Field(description="allow | deny | review (a risk decision: allow when approved, else deny)")
    reasons: list[dict[str, Any]] = Field(description="code, message (and a citation for a rule's reason)")
    versions: dict[str, str] = Field(description="the rule, list or model versions that made it")
    inputs_hash: str = Field(description="0x hash of its inputs' RFC 8785 canonical JSON (HMAC for personal ones)")
    record_hash: str = Field(
        description="0x keccak256 of the record (the audit log chains it); a risk decision's decisionHash"
    )
    decided_at: str = Field(description="RFC 3339 UTC")
    risk: dict[str, Any] | None = Field(
        description="a risk decision's figures: score, grade (1 = A … 5 = E), pd, max_ltv_bps, max_amount, spread_bps"
    )


def _out(decision: ListedDecision) -> DecisionOut:
    return DecisionOut(
        id=decision.id,
        kind=decision.kind,
        subject_ref=decision.subject_ref,
        borrower_id=decision.borrower_id,
        request_id=decision.request_id,
        outcome=decision.outcome.value,
        reasons=decision.reasons,
        versions=decision.versions,
        inputs_hash=decision.inputs_hash,
        record_hash=decision.record_hash,
        decided_at=decision.decided_at.isoformat(),
        risk=decision.risk,
    )


def _utc(moment: datetime | None) -> datetime | None:
    """A time without an offset is read as UTC."""
    return moment if moment is None or moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@router.get("", response_model=Page[DecisionOut])
async def list_decisions(
    request: Request,
    _: AuditorPrincipal,
    platform: PlatformDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    borrower_id: Annotated[
        str | None, Query(min_length=1, max_length=64, description="decisions about this borrower")
    ] = None,
    request_id: Annotated[
        str | None, Query(min_length=1, max_length=36, description="decisions made for this credit request")
    ] = None,
    kind: Annotated[DecisionKindName | None, Query(description="one kind of decision")] = None,
    outcome: Annotated[Outcome | None, Query(description="allow | deny | review")] = None,
    decided_after: Annotated[
        Rfc3339DateTime | None, Query(description="RFC 3339; decided at or after (no offset: UTC)")
    ] = None,
    decided_before: Annotated[
        Rfc3339DateTime | None, Query(description="RFC 3339; decided before (no offset: UTC)")
    ] = None,
) -> Page[DecisionOut]:
    """Risk and compliance decisions, newest first, a page at a time (`next` is the following page's URL with the
    same filters, null at the end). ``borrower_id`` finds the decisions about the borrower and those made for its
    credit requests (its offers' checks); ``request_id`` those made for one request (compliance records made before
    requests were kept with them are found by borrower and time only)."""
    filters = DecisionFilter(
        borrower_id=borrower_id,
        request_id=request_id,
        kind=None if kind is None else str(kind.value),
        outcome=outcome,
        decided_after=_utc(decided_after),
        decided_before=_utc(decided_before),
    )
    after = decode_cursor(DECISIONS_CURSOR, cursor)

    rows = await asyncio.to_thread(SqlDecisions(platform.database).page, filters, after, limit + 1)
    return page(request, DECISIONS_CURSOR, rows, limit, lambda row: (row.decided_at, row.id), _out)
