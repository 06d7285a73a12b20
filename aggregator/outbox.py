"""Loan events out: ``append`` writes a loan's domain event to the transactional outbox in the caller's transaction
(the one that changes the ledger), so the event exists exactly when the change does; the relay
(``aggregator.relay``) delivers it later, at least once, in order per loan.

Each event has an id a receiver deduplicates on — derived from (loan, type, key), so the same fact recorded again
by another process, or a job that runs twice, names the same event and writes nothing new — and the loan's
``sequence`` (1, 2, 3 …, no gaps), which orders a loan's events. The body is fixed when the event is written:

    {"protocol_version": "1", "event_id": …, "type": "loan.repayment", "loan_id": …, "sequence": 2,
     "occurred_at": RFC 3339, "loan": {the loan as the ledger has it after the change}, "data": {what happened}}

Amounts are integer base units of the loan's asset as decimal strings, as everywhere in the protocol; ``payload``
must be JSON (strings, numbers, booleans, lists, objects).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from aggregator.errors import AggregatorError
from store.aggregator import LoanRow, QuoteRow
from store.outbox import OutboxEventRow, SqlOutboxRepository

PROTOCOL_VERSION = "1"
LOAN_OPENED = "loan.opened"
LOAN_REPAYMENT = "loan.repayment"
LOAN_PAST_DUE = "loan.past_due"
LOAN_DEFAULTED = "loan.defaulted"
LOAN_LIQUIDATED = "loan.liquidated"
LOAN_CLOSED = "loan.closed"
LOAN_WRITTEN_OFF = "loan.written_off"
LOAN_EVENT_RETRACTED = "loan.event_retracted"
EVENT_TYPES = (
    LOAN_OPENED,
    LOAN_REPAYMENT,
    LOAN_PAST_DUE,
    LOAN_DEFAULTED,
    LOAN_LIQUIDATED,
    LOAN_CLOSED,
    LOAN_WRITTEN_OFF,
    LOAN_EVENT_RETRACTED,
)
_EVENT_IDS = uuid.UUID("0b7f1a52-3c7e-4f59-9d0e-5a3c2e8b6d41")

__all__ = [
    "EVENT_TYPES",
    "LOAN_CLOSED",
    "LOAN_DEFAULTED",
    "LOAN_EVENT_RETRACTED",
    "LOAN_LIQUIDATED",
    "LOAN_OPENED",
    "LOAN_PAST_DUE",
    "LOAN_REPAYMENT",
    "LOAN_WRITTEN_OFF",
    "DeliveryLog",
    "EventLog",
    "OutboxError",
    "append",
    "dedup_key",
    "event_body",
    "event_id_for",
    "event_log",
    "loan_view",
]


class OutboxError(AggregatorError):
    """An event the outbox does not know, or one without a loan to belong to."""


def event_id_for(loan_id: str, event_type: str, key: str) -> str:
    """The id of the event ``(loan, type, key)``: the same in every process that writes it."""
    return str(uuid.uuid5(_EVENT_IDS, f"{loan_id}:{event_type}:{key}"))


def dedup_key(event_type: str, key: str) -> str:
    """What makes an event unique for its loan: its type and its key (``append``'s ``key``)."""
    return f"{event_type}:{key}"


def append(
    session: Session,
    *,
    loan: LoanRow,
    event_type: str,
    payload: Mapping[str, Any],
    key: str | None = None,
    occurred_at: datetime | None = None,
) -> str:
    """Write ``event_type`` about ``loan`` with ``payload`` (its ``data``) to the outbox in ``session``'s
    transaction; the caller's unit of work commits it with the ledger change. Returns the event id.

    Args:
        key: what makes this event unique for the loan and type (a fact's transaction and log index, a
            delinquency bucket …): an event already written under it is not written again and its id is returned.
            Without a key every call writes a new event.
        occurred_at: when it happened (now by default).
    """
    if not loan.id:
        raise OutboxError("an event needs a loan with an id")
    quote = None if loan.quote_id is None else session.get(QuoteRow, loan.quote_id)
    offer_ref = None if quote is None else quote.offer.get("providerRef")
    event, _ = write(
        session,
        loan_id=loan.id,
        provider_id=loan.provider_id,
        borrower_id=loan.borrower_id,
        view=loan_view(loan, str(offer_ref) if offer_ref else None),
        event_type=event_type,
        payload=payload,
        key=key,
        occurred_at=occurred_at,
    )
    return event.id


def write(
    session: Session,
    *,
    loan_id: str,
    provider_id: str | None,
    borrower_id: str | None,
    view: Mapping[str, Any],
    event_type: str,
    payload: Mapping[str, Any],
    key: str | None = None,
    occurred_at: datetime | None = None,
) -> tuple[OutboxEventRow, bool]:
    """``append`` for a loan given by its parts (``view``: the loan as the event shows it), also one whose ledger
    record is gone (a retraction's). Returns the event row and whether it is new (False: written before under
    ``key``)."""
    if event_type not in EVENT_TYPES:
        raise OutboxError(f"unknown loan event type {event_type!r}; known: {', '.join(EVENT_TYPES)}")
    dedup = dedup_key(event_type, key if key is not None else uuid.uuid4().hex)
    event_id = event_id_for(loan_id, event_type, dedup)
    repo = SqlOutboxRepository(session)
    last = repo.lock_sequence(loan_id)  # held until commit: the loan's writers take their numbers in turn
    existing = repo.event_by_key(loan_id, dedup)
    if existing is not None:
        return repo.event(existing), False
    at = occurred_at or datetime.now(UTC)
    sequence = last + 1
    if session.get(OutboxEventRow, event_id) is not None:  # retracted under this key: the fact came back later
        event_id = event_id_for(loan_id, event_type, f"{dedup}#{sequence}")
    row = OutboxEventRow(
        id=event_id,
        loan_id=loan_id,
        sequence=sequence,
        event_type=event_type,
        dedup_key=dedup,
        provider_id=provider_id,
        borrower_id=borrower_id,
        body=event_body(event_id, event_type, sequence, at, view, payload),
        occurred_at=at,
        dispatched_at=None,
    )
    repo.add(row)
    repo.set_sequence(loan_id, sequence)
    session.flush()
    return row, True


def _units(value: int | None) -> str | None:
    return None if value is None else str(value)


def event_body(
    event_id: str,
    event_type: str,
    sequence: int,
    occurred_at: datetime,
    loan: Mapping[str, Any],
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """The message a recipient gets (docs/provider-quote-protocol.yaml, ``LoanEvent``)."""
    return {
        "protocol_version": PROTOCOL_VERSION,
        "event_id": event_id,
        "type": event_type,
        "loan_id": loan["loan_id"],
        "sequence": sequence,
        "occurred_at": occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "loan": dict(loan),
        "data": dict(data),
    }


def loan_view(loan: LoanRow, offer_ref: str | None = None) -> dict[str, Any]:
    """The loan as an event shows it: identity, parties, terms and the state after the change (``offer_ref``: the
    lender's reference of the offer, from the loan's quote)."""
    return {
        "loan_id": loan.id,
        "chain": loan.chain_name,
        "chain_id": loan.chain_id,
        "contract": loan.contract,
        "onchain_loan_id": _units(loan.onchain_loan_id),
        "offer_digest": loan.offer_digest,
        "offer_ref": offer_ref,
        "provider_id": loan.provider_id,
        "funder": loan.funder,
        "borrower_address": loan.borrower_address,
        "status": loan.status,
        "asset": loan.asset,
        "asset_address": loan.asset_address,
        "principal": _units(loan.principal),
        "outstanding_principal": _units(loan.outstanding_principal),
        "interest_paid": _units(loan.interest_paid),
        "principal_paid": _units(loan.principal_paid),
        "rate_bps": loan.rate_bps,
        "term_seconds": loan.term_seconds,
        "collateral_asset": loan.collateral_asset,
        "collateral_amount": _units(loan.collateral_amount),
    }


@dataclass(frozen=True, slots=True)
class DeliveryLog:
    recipient: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventLog:
    event_id: str
    event_type: str
    sequence: int
    occurred_at: datetime
    deliveries: tuple[DeliveryLog, ...]
    retracted_at: datetime | None = None  # a reorg removed the fact it reported
    retracted_by: str | None = None  # the loan.event_retracted that said so to those who had it


def event_log(session: Session, loan_id: str, recipients: Callable[[str], bool] = lambda _: True) -> list[EventLog]:
    """The loan's events in order, each with its deliveries to the recipients ``recipients`` lets through."""
    repo = SqlOutboxRepository(session)
    return [
        EventLog(
            event.id,
            event.event_type,
            event.sequence,
            event.occurred_at,
            tuple(
                DeliveryLog(
                    d.recipient,
                    d.status,
                    d.attempts,
                    d.last_status_code,
                    d.last_error,
                    d.next_attempt_at,
                    d.delivered_at,
                )
                for d in repo.deliveries(event.id)
                if recipients(d.recipient)
            ),
            event.retracted_at,
            event.retracted_by,
        )
        for event in repo.events(loan_id)
    ]
