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

Everything here works on plain values through an ``OutboxStore`` (the outbox in the caller's transaction; never
commits): ``store.outbox.SqlOutboxStore`` in SQL, ``aggregator.outbox_memory.InMemoryOutbox`` for unit tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aggregator.errors import AggregatorError

PROTOCOL_VERSION = "1"
LOAN_OPENED = "loan.opened"
LOAN_REPAYMENT = "loan.repayment"
LOAN_PAST_DUE = "loan.past_due"
LOAN_DEFAULTED = "loan.defaulted"
LOAN_LIQUIDATED = "loan.liquidated"
LOAN_CLOSED = "loan.closed"
LOAN_CANCELLED = "loan.cancelled"
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
    LOAN_CANCELLED,
)
_EVENT_IDS = uuid.UUID("0b7f1a52-3c7e-4f59-9d0e-5a3c2e8b6d41")

#: a delivery's status: waiting to be sent (or sent again), received, no webhook URL any more, or called off because
#: its event was retracted before it went out
PENDING, DELIVERED, NO_DESTINATION, CANCELLED = "pending", "delivered", "no_destination", "cancelled"
#: the attempts a delivery's log keeps, its newest (a receiver down for a month is retried thousands of times; the
#: delivery keeps the count of them all and the last answer)
ATTEMPT_LOG_ROWS = 50

__all__ = [
    "ATTEMPT_LOG_ROWS",
    "CANCELLED",
    "DELIVERED",
    "EVENT_TYPES",
    "LOAN_CANCELLED",
    "LOAN_CLOSED",
    "LOAN_DEFAULTED",
    "LOAN_EVENT_RETRACTED",
    "LOAN_LIQUIDATED",
    "LOAN_OPENED",
    "LOAN_PAST_DUE",
    "LOAN_REPAYMENT",
    "LOAN_WRITTEN_OFF",
    "NO_DESTINATION",
    "PENDING",
    "Attempt",
    "Delivery",
    "DeliveryLog",
    "EventLoan",
    "EventLog",
    "OutboxError",
    "OutboxEvent",
    "OutboxStore",
    "append",
    "dedup_key",
    "event_body",
    "event_id_for",
    "event_log",
    "loan_view",
    "write",
]


class OutboxError(AggregatorError):
    """An event the outbox does not know, or one without a loan to belong to."""


@dataclass(frozen=True, slots=True)
class EventLoan:
    """A loan as its events name it: its id, the parties that receive them, and ``view`` (``loan_view``: the loan as
    the event shows it)."""

    loan_id: str
    provider_id: str | None
    borrower_id: str | None
    view: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One loan event as written (``body`` is fixed then); ``dispatched_at``: when its recipients were resolved into
    deliveries; ``retracted_at``/``retracted_by``: a reorg removed its fact, and the ``loan.event_retracted`` that told
    those who had it."""

    id: str
    loan_id: str
    sequence: int
    event_type: str
    dedup_key: str
    provider_id: str | None
    borrower_id: str | None
    body: dict[str, Any] = field(compare=False)
    occurred_at: datetime
    dispatched_at: datetime | None = None
    retracted_at: datetime | None = None
    retracted_by: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event to one recipient (``provider:<id>`` or ``borrower:<id>``), in the loan's order (``sequence``)."""

    id: int
    event_id: str
    loan_id: str
    sequence: int
    recipient: str
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    url: str | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP attempt of a delivery: when, the answer's status (None when there was none), the error, how long."""

    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class OutboxStore(Protocol):
    """The outbox in the caller's transaction (the one that changes the ledger, or the relay's); never commits."""

    def loan(self, loan_id: str) -> EventLoan | None:
        """The loan as its events show it now; None when it has no ledger record (any more)."""
        ...

    def lock_sequence(self, loan_id: str) -> int:
        """The loan's last event number (0 at first), locked until the transaction ends: a loan's writers take
        their numbers in turn."""
        ...

    def set_sequence(self, loan_id: str, sequence: int) -> None: ...

    def event(self, event_id: str) -> OutboxEvent | None: ...

    def event_by_key(self, loan_id: str, dedup_key: str) -> OutboxEvent | None: ...

    def lock_event(self, event_id: str) -> OutboxEvent | None:
        """The event as committed, its row locked until the transaction ends: a retraction and the relay's dispatch
        of the event (``undispatched`` locks the rows it reads) take turns, so each sees what the other wrote."""
        ...

    def written_before(self, loan_id: str, dedup_key: str, event_id: str) -> tuple[OutboxEvent | None, bool]:
        """``event_by_key`` and whether an event ``event_id`` exists (under another key: retracted), in one read."""
        ...

    def events(self, loan_id: str, after: int = 0, limit: int | None = None) -> list[OutboxEvent]:
        """The loan's events in its order: those numbered after ``after``, at most ``limit`` of them (None: all)."""
        ...

    def add_event(self, event: OutboxEvent) -> None: ...

    def update_event(self, event: OutboxEvent) -> None:
        """Save what changes after writing: ``dispatched_at``, ``retracted_at``, ``retracted_by``, ``dedup_key``."""
        ...

    def undispatched(self, limit: int) -> list[OutboxEvent]:
        """Events whose recipients are not resolved yet, oldest first (each loan's in its order), their rows locked
        until the transaction ends (``lock_event``)."""
        ...

    def add_deliveries(self, pending: Sequence[tuple[str, str]], now: datetime) -> None:
        """A pending delivery, due ``now``, of each (event id, recipient) pair (one statement for a relay's whole
        batch); a pair that has a delivery already gets nothing."""
        ...

    def deliveries(self, event_id: str) -> list[Delivery]: ...

    def delivery(self, delivery_id: int) -> Delivery | None: ...

    def due(self, now: datetime, limit: int, per_recipient: int | None = None) -> list[Delivery]:
        """Pending deliveries due by ``now`` that head their (loan, recipient) stream: no earlier event of the loan
        is pending for that recipient or waiting to be dispatched. Soonest due first, at most ``per_recipient`` of
        each recipient (its soonest), so a recipient with many overdue heads leaves room for every other one."""
        ...

    def update_delivery(self, delivery: Delivery) -> None:
        """Save its status, attempts, URL, last answer and error, next attempt and delivery time."""
        ...

    def add_attempts(self, delivery_id: int, attempts: Sequence[Attempt]) -> None:
        """Log the attempts, keeping the delivery's newest ``ATTEMPT_LOG_ROWS`` (its own counters are
        ``update_delivery``'s)."""
        ...


def event_id_for(loan_id: str, event_type: str, key: str) -> str:
    """The id of the event ``(loan, type, key)``: the same in every process that writes it."""
    return str(uuid.uuid5(_EVENT_IDS, f"{loan_id}:{event_type}:{key}"))


def dedup_key(event_type: str, key: str) -> str:
    """What makes an event unique for its loan: its type and its key (``append``'s ``key``)."""
    return f"{event_type}:{key}"


def append(
    outbox: OutboxStore,
    *,
    loan_id: str,
    event_type: str,
    payload: Mapping[str, Any],
    key: str | None = None,
    occurred_at: datetime | None = None,
) -> str:
    """Write ``event_type`` about the loan ``loan_id`` with ``payload`` (its ``data``) to the outbox in the caller's
    transaction; its unit of work commits it with the ledger change. Returns the event id.

    Args:
        key: what makes this event unique for the loan and type (a fact's transaction and log index, a
            delinquency bucket …): an event already written under it is not written again and its id is returned.
            Without a key every call writes a new event.
        occurred_at: when it happened (now by default).

    Raises:
        OutboxError: the loan has no record, or the event type is unknown.
    """
    loan = outbox.loan(loan_id)
    if loan is None:
        raise OutboxError(f"loan {loan_id!r} is not recorded: its {event_type} has nothing to name")
    event, _ = write(outbox, loan, event_type=event_type, payload=payload, key=key, occurred_at=occurred_at)
    return event.id


def write(
    outbox: OutboxStore,
    loan: EventLoan,
    *,
    event_type: str,
    payload: Mapping[str, Any],
    key: str | None = None,
    occurred_at: datetime | None = None,
) -> tuple[OutboxEvent, bool]:
    """``append`` for a loan given as its events show it, also one whose ledger record is gone (a retraction's).
    Returns the event and whether it is new (False: written before under ``key``)."""
    if event_type not in EVENT_TYPES:
        raise OutboxError(f"unknown loan event type {event_type!r}; known: {', '.join(EVENT_TYPES)}")
    dedup = dedup_key(event_type, key if key is not None else uuid.uuid4().hex)
    event_id = event_id_for(loan.loan_id, event_type, dedup)
    last = outbox.lock_sequence(loan.loan_id)
    existing, id_taken = outbox.written_before(loan.loan_id, dedup, event_id)
    if existing is not None:
        return existing, False
    at = occurred_at or datetime.now(UTC)
    sequence = last + 1
    if id_taken:  # retracted under this key: the fact came back later
        event_id = event_id_for(loan.loan_id, event_type, f"{dedup}#{sequence}")
    event = OutboxEvent(
        id=event_id,
        loan_id=loan.loan_id,
        sequence=sequence,
        event_type=event_type,
        dedup_key=dedup,
        provider_id=loan.provider_id,
        borrower_id=loan.borrower_id,
        body=event_body(event_id, event_type, sequence, at, loan.view, payload),
        occurred_at=at,
    )
    outbox.add_event(event)
    outbox.set_sequence(loan.loan_id, sequence)
    return event, True


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


class ViewedLoan(Protocol):
    """A loan's ledger record as an event shows it (``aggregator.projection.LoanState``, or its stored row)."""

    @property
    def id(self) -> str: ...
    @property
    def chain_name(self) -> str: ...
    @property
    def chain_id(self) -> int: ...
    @property
    def contract(self) -> str: ...
    @property
    def onchain_loan_id(self) -> int | None: ...
    @property
    def offer_digest(self) -> str: ...
    @property
    def provider_id(self) -> str | None: ...
    @property
    def funder(self) -> str | None: ...
    @property
    def borrower_address(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def asset(self) -> str: ...
    @property
    def asset_address(self) -> str | None: ...
    @property
    def principal(self) -> int: ...
    @property
    def outstanding_principal(self) -> int | None: ...
    @property
    def interest_paid(self) -> int | None: ...
    @property
    def principal_paid(self) -> int | None: ...
    @property
    def rate_bps(self) -> int | None: ...
    @property
    def term_seconds(self) -> int | None: ...
    @property
    def collateral_asset(self) -> str | None: ...
    @property
    def collateral_amount(self) -> int | None: ...


def loan_view(loan: ViewedLoan, offer_ref: str | None = None) -> dict[str, Any]:
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


def event_log(
    outbox: OutboxStore,
    loan_id: str,
    recipients: Callable[[str], bool] = lambda _: True,
    after: int = 0,
    limit: int | None = None,
) -> list[EventLog]:
    """The loan's events in order (numbered after ``after``, at most ``limit``), each with its deliveries to the
    recipients ``recipients`` lets through."""
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
                for d in outbox.deliveries(event.id)
                if recipients(d.recipient)
            ),
            event.retracted_at,
            event.retracted_by,
        )
        for event in outbox.events(loan_id, after, limit)
    ]
