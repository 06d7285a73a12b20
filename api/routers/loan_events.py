"""A loan's events and their delivery log: what the outbox wrote for the loan and how each webhook delivery went."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from aggregator.errors import LoanNotFound
from aggregator.outbox import EventLog
from api.auth import Principal, Role
from api.deps import PlatformDep
from api.pagination import DEFAULT_LIMIT, CursorParam, Limit, decode_sequence_cursor, encode_sequence_cursor, page_by
from api.routers.loans import LoanReader, _scope
from store.loan_events import SqlLoanEventLog

router = APIRouter(prefix="/v1/loans", tags=["loans"])


class DeliveryOut(BaseModel):
    recipient: str = Field(description="provider:<id> or borrower:<id>")
    status: str = Field(
        description="pending, delivered, no_destination (the recipient removed its URL), or cancelled (the event was "
        "retracted before it reached the recipient)"
    )
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None


class LoanEventOut(BaseModel):
    event_id: str
    type: str
    sequence: int
    occurred_at: datetime
    deliveries: list[DeliveryOut]
    retracted_at: datetime | None = Field(
        default=None, description="when a reorg removed the chain fact it reported (null: it stands)"
    )
    retracted_by: str | None = Field(
        default=None, description="the loan.event_retracted event sent to the recipients that already had it"
    )


class LoanEventsOut(BaseModel):
    items: list[LoanEventOut]
    next: str | None = Field(default=None, description="the URL of the next page; null on the last")


def _own_recipient(principal: Principal) -> str | None:
    """A borrower or provider sees its own deliveries only; admins and auditors every one."""
    if principal.sees_everything:
        return None
    kind = "provider" if principal.role is Role.PROVIDER else "borrower"
    return f"{kind}:{principal.subject_id}"


def _out(event: EventLog) -> LoanEventOut:
    return LoanEventOut(
        event_id=event.event_id,
        type=event.event_type,
        sequence=event.sequence,
        occurred_at=event.occurred_at,
        deliveries=[DeliveryOut.model_validate(d, from_attributes=True) for d in event.deliveries],
        retracted_at=event.retracted_at,
        retracted_by=event.retracted_by,
    )


@router.get("/{loan_id}/events", response_model=LoanEventsOut)
async def loan_events(
    request: Request,
    loan_id: str,
    principal: LoanReader,
    platform: PlatformDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> LoanEventsOut:
    """The loan's events (``loan.opened``, ``loan.repayment`` …) in its order, oldest first, a page at a time
    (``next`` is the following page's URL, null at the end), each with its webhook deliveries: status, attempts,
    the last answer's status and error, when it is tried next or was delivered."""
    scope, own = _scope(principal), _own_recipient(principal)
    after = decode_sequence_cursor(cursor)

    log = SqlLoanEventLog(platform.database)
    events = await asyncio.to_thread(
        log.for_loan, loan_id, scope, lambda recipient: own is None or recipient == own, after, limit + 1
    )
    if events is None:
        raise LoanNotFound(loan_id)
    shown = page_by(request, events, limit, lambda event: encode_sequence_cursor(event.sequence), _out)
    return LoanEventsOut(items=shown.items, next=shown.next)
