"""The transactional outbox: loan events written in the transaction of the ledger change they report, and the log
of their delivery to webhooks.

``outbox_events`` holds one row per event: its id (what a receiver deduplicates on), the loan, the loan's own
``sequence`` (1, 2, 3 … with no gap, in commit order: ``outbox_sequences`` holds each loan's last number and its row
lock orders concurrent writers of one loan), a ``dedup_key`` unique per loan (a fact applied again, or a job that
runs twice, writes no second event), and the body sent, fixed when written. ``dispatched_at`` is set when the relay
has resolved the event's recipients into ``outbox_deliveries`` — one row per (event, recipient) with its status,
attempts, next attempt and last error — and every attempt is logged in ``outbox_attempts`` (the newest
``ATTEMPT_LOG_ROWS`` of each delivery: a receiver down for a month leaves no endless log; the delivery counts them).

An event whose chain fact a reorg removed is *retracted* (``aggregator.retraction``): ``retracted_at`` is set, its
deliveries still pending are ``cancelled``, and, when some recipient already had it, ``retracted_by`` names the
``loan.event_retracted`` event written to tell them.

``SqlOutboxStore`` is the outbox of ``aggregator.outbox.OutboxStore`` on these rows (plain values in and out);
``SqlOutboxRepository`` the rows themselves, for it and for tests that read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column
from sqlalchemy.sql.dml import Insert

from aggregator.outbox import ATTEMPT_LOG_ROWS, Attempt, Delivery, EventLoan, OutboxEvent, loan_view
from aggregator.outbox import CANCELLED as CANCELLED
from aggregator.outbox import DELIVERED as DELIVERED
from aggregator.outbox import NO_DESTINATION as NO_DESTINATION
from aggregator.outbox import PENDING as PENDING
from store.aggregator import LoanRow, QuoteRow
from store.base import Base
from store.types import UtcDateTime


class OutboxEventRow(Base):
    __tablename__ = "outbox_events"
    __table_args__ = (
        UniqueConstraint("loan_id", "sequence", name="uq_outbox_events_sequence"),
        UniqueConstraint("loan_id", "dedup_key", name="uq_outbox_events_dedup"),
        Index("ix_outbox_events_undispatched", "dispatched_at", "occurred_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    loan_id: Mapped[str] = mapped_column(String(36))
    sequence: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(64))
    dedup_key: Mapped[str] = mapped_column(String(200))
    provider_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    borrower_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    #: when a reorg removed the fact it reports (None: it stands)
    retracted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    #: the ``loan.event_retracted`` event that told the recipients who already had it
    retracted_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class OutboxSequenceRow(Base):
    """Each loan's last event number; its row lock serializes the loan's event writers."""

    __tablename__ = "outbox_sequences"

    loan_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(Integer)


class OutboxDeliveryRow(Base):
    """One event to one recipient (``provider:<id>`` or ``borrower:<id>``): delivered in the loan's order."""

    __tablename__ = "outbox_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "recipient", name="uq_outbox_deliveries_recipient"),
        Index("ix_outbox_deliveries_due", "status", "next_attempt_at"),
        Index("ix_outbox_deliveries_stream", "loan_id", "recipient", "sequence"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("outbox_events.id", ondelete="CASCADE"))
    loan_id: Mapped[str] = mapped_column(String(36))
    sequence: Mapped[int] = mapped_column(Integer)
    recipient: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class OutboxAttemptRow(Base):
    """One HTTP attempt of a delivery: when, the answer's status (None when there was none) and the error."""

    __tablename__ = "outbox_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("outbox_deliveries.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(512), nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)


def _locking_sequence(insert: Any) -> Insert:
    """Create the loan's sequence row at 0, or lock it as it is, and return its last number: one statement (an
    upsert takes the row lock an UPDATE takes, waiting for a concurrent writer of the loan as FOR UPDATE did)."""
    statement = insert(OutboxSequenceRow).values(loan_id=bindparam("loan_id"), last_sequence=0)
    return statement.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=[OutboxSequenceRow.loan_id], set_={"last_sequence": OutboxSequenceRow.last_sequence}
    ).returning(OutboxSequenceRow.last_sequence)


#: the statements a loan event's write sends, built once (by dialect where they differ)
_LOCK_SEQUENCE = {"postgresql": _locking_sequence(pg_insert), "sqlite": _locking_sequence(sqlite_insert)}
_SET_SEQUENCE = (
    update(OutboxSequenceRow)
    .where(OutboxSequenceRow.loan_id == bindparam("of_loan"))
    .values(last_sequence=bindparam("sequence"))
)
_WRITTEN_BEFORE = select(OutboxEventRow).where(
    or_(
        and_(OutboxEventRow.loan_id == bindparam("loan_id"), OutboxEventRow.dedup_key == bindparam("dedup_key")),
        OutboxEventRow.id == bindparam("event_id"),
    )
)
_INSERT_EVENT = cast(Table, OutboxEventRow.__table__).insert()


class SqlOutboxRepository:
    """Outbox rows in the caller's session; never commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def insert_if_new(self, table: type[Base], rows: list[dict[str, Any]]) -> None:
        """One INSERT … ON CONFLICT DO NOTHING of ``rows`` (PostgreSQL's or SQLite's)."""
        insert = pg_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement: Insert = insert(table).values(rows).on_conflict_do_nothing()
        self.session.execute(statement)

    def lock_sequence(self, loan_id: str) -> int:
        """The loan's last event number, its row locked until the caller's transaction ends (created at 0)."""
        statement = _LOCK_SEQUENCE[self.session.get_bind().dialect.name]
        return int(self.session.execute(statement, {"loan_id": loan_id}).scalar_one())

    def set_sequence(self, loan_id: str, sequence: int) -> None:
        self.session.execute(_SET_SEQUENCE, {"of_loan": loan_id, "sequence": sequence})

    def event_by_key(self, loan_id: str, dedup_key: str) -> str | None:
        return self.session.scalars(
            select(OutboxEventRow.id).where(OutboxEventRow.loan_id == loan_id, OutboxEventRow.dedup_key == dedup_key)
        ).one_or_none()

    def events(self, loan_id: str, after: int = 0, limit: int | None = None) -> list[OutboxEventRow]:
        query = select(OutboxEventRow).where(OutboxEventRow.loan_id == loan_id, OutboxEventRow.sequence > after)
        return list(self.session.scalars(query.order_by(OutboxEventRow.sequence).limit(limit)))

    def undispatched(self, limit: int) -> list[OutboxEventRow]:
        """Events whose recipients are not resolved yet, oldest first (each loan's in its order), locked (``FOR
        UPDATE``; SQLite has one writer at a time anyway) until the relay's dispatch commits: a retraction of one
        of them waits, then sees its deliveries and cancels them."""
        query = (
            select(OutboxEventRow)
            .where(OutboxEventRow.dispatched_at.is_(None))
            .order_by(OutboxEventRow.occurred_at, OutboxEventRow.loan_id, OutboxEventRow.sequence)
            .limit(limit)
            .with_for_update()
        )
        return list(self.session.scalars(query))

    def lock_event(self, event_id: str) -> OutboxEventRow | None:
        """The event re-read (over what the session holds) with its row locked until the transaction ends."""
        query = (
            select(OutboxEventRow)
            .where(OutboxEventRow.id == event_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return self.session.scalars(query).one_or_none()

    def due(self, now: datetime, limit: int, per_recipient: int | None = None) -> Sequence[OutboxDeliveryRow]:
        """Pending deliveries due now that head their (loan, recipient) stream: no earlier event of the loan is
        still pending for that recipient and none is waiting to be dispatched, so each stream is delivered in order
        and one receiver that fails holds back only its own loans. At most ``per_recipient`` of each recipient (its
        soonest due, ``ROW_NUMBER()`` over the recipient's heads): a lender with thousands of overdue heads fills no
        more of the ``limit`` than it can be sent at once, and every other recipient is in the batch too."""
        earlier = aliased(OutboxDeliveryRow)
        blocked = (
            select(earlier.id)
            .where(
                and_(
                    earlier.loan_id == OutboxDeliveryRow.loan_id,
                    earlier.recipient == OutboxDeliveryRow.recipient,
                    earlier.sequence < OutboxDeliveryRow.sequence,
                    earlier.status == PENDING,
                )
            )
            .exists()
        )
        undispatched = (
            select(OutboxEventRow.id)
            .where(
                and_(
                    OutboxEventRow.loan_id == OutboxDeliveryRow.loan_id,
                    OutboxEventRow.sequence < OutboxDeliveryRow.sequence,
                    OutboxEventRow.dispatched_at.is_(None),
                )
            )
            .exists()
        )
        soonest = (OutboxDeliveryRow.next_attempt_at, OutboxDeliveryRow.id)
        place = func.row_number().over(partition_by=OutboxDeliveryRow.recipient, order_by=soonest).label("place")
        heads = (
            select(OutboxDeliveryRow, place)
            .where(
                OutboxDeliveryRow.status == PENDING,
                OutboxDeliveryRow.next_attempt_at <= now,
                ~blocked,
                ~undispatched,
            )
            .subquery("heads")
        )
        head = aliased(OutboxDeliveryRow, heads)
        query = select(head).order_by(head.next_attempt_at, head.id).limit(limit)
        if per_recipient is not None:
            query = query.where(heads.c.place <= per_recipient)
        return list(self.session.scalars(query))

    def deliveries(self, event_id: str) -> list[OutboxDeliveryRow]:
        query = select(OutboxDeliveryRow).where(OutboxDeliveryRow.event_id == event_id)
        return list(self.session.scalars(query.order_by(OutboxDeliveryRow.id)))


def _event(row: OutboxEventRow) -> OutboxEvent:
    return OutboxEvent(
        id=row.id,
        loan_id=row.loan_id,
        sequence=row.sequence,
        event_type=row.event_type,
        dedup_key=row.dedup_key,
        provider_id=row.provider_id,
        borrower_id=row.borrower_id,
        body=row.body,
        occurred_at=row.occurred_at,
        dispatched_at=row.dispatched_at,
        retracted_at=row.retracted_at,
        retracted_by=row.retracted_by,
    )


def _delivery(row: OutboxDeliveryRow) -> Delivery:
    return Delivery(
        id=row.id,
        event_id=row.event_id,
        loan_id=row.loan_id,
        sequence=row.sequence,
        recipient=row.recipient,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        url=row.url,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
    )


class SqlOutboxStore:
    """The outbox (``aggregator.outbox.OutboxStore``) in the caller's session: plain values in and out, rows only
    inside; never commits (the ledger's, the default job's or the relay's unit of work does)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._rows = SqlOutboxRepository(session)
        # the rows read, held for the transaction: the session's identity map holds them weakly, and a value handed
        # out and given back (an event dispatched, a delivery settled) would otherwise be read again
        self._events: dict[str, OutboxEventRow] = {}
        self._deliveries: dict[int, OutboxDeliveryRow] = {}

    def _event_value(self, row: OutboxEventRow) -> OutboxEvent:
        self._events[row.id] = row
        return _event(row)

    def _delivery_value(self, row: OutboxDeliveryRow) -> Delivery:
        self._deliveries[row.id] = row
        return _delivery(row)

    def _event_row(self, event_id: str) -> OutboxEventRow | None:
        row = self._events.get(event_id) or self.session.get(OutboxEventRow, event_id)
        if row is not None:
            self._events[event_id] = row
        return row

    def loan(self, loan_id: str) -> EventLoan | None:
        row = self.session.get(LoanRow, loan_id)
        if row is None:
            return None
        quote = None if row.quote_id is None else self.session.get(QuoteRow, row.quote_id)
        offer_ref = None if quote is None else quote.offer.get("providerRef")
        view = loan_view(row, str(offer_ref) if offer_ref else None)
        return EventLoan(row.id, row.provider_id, row.borrower_id, view)

    def lock_sequence(self, loan_id: str) -> int:
        return self._rows.lock_sequence(loan_id)

    def set_sequence(self, loan_id: str, sequence: int) -> None:
        self._rows.set_sequence(loan_id, sequence)

    def event(self, event_id: str) -> OutboxEvent | None:
        row = self._event_row(event_id)
        return None if row is None else _event(row)

    def lock_event(self, event_id: str) -> OutboxEvent | None:
        row = self._rows.lock_event(event_id)
        return None if row is None else self._event_value(row)

    def event_by_key(self, loan_id: str, dedup_key: str) -> OutboxEvent | None:
        event_id = self._rows.event_by_key(loan_id, dedup_key)
        return None if event_id is None else self.event(event_id)

    def written_before(self, loan_id: str, dedup_key: str, event_id: str) -> tuple[OutboxEvent | None, bool]:
        params = {"loan_id": loan_id, "dedup_key": dedup_key, "event_id": event_id}
        rows = [self._event_value(row) for row in self.session.scalars(_WRITTEN_BEFORE, params)]
        keyed = next((e for e in rows if e.loan_id == loan_id and e.dedup_key == dedup_key), None)
        return keyed, any(e.id == event_id for e in rows)

    def events(self, loan_id: str, after: int = 0, limit: int | None = None) -> list[OutboxEvent]:
        return [self._event_value(row) for row in self._rows.events(loan_id, after, limit)]

    def add_event(self, event: OutboxEvent) -> None:
        """One INSERT (Core: no ORM row to flush; read back as a row only if asked for again in this session)."""
        self.session.execute(
            _INSERT_EVENT,
            {
                "id": event.id,
                "loan_id": event.loan_id,
                "sequence": event.sequence,
                "event_type": event.event_type,
                "dedup_key": event.dedup_key,
                "provider_id": event.provider_id,
                "borrower_id": event.borrower_id,
                "body": event.body,
                "occurred_at": event.occurred_at,
                "dispatched_at": event.dispatched_at,
                "retracted_at": event.retracted_at,
                "retracted_by": event.retracted_by,
            },
        )

    def update_event(self, event: OutboxEvent) -> None:
        row = self._event_row(event.id)
        assert row is not None, f"no outbox event {event.id}"
        row.dispatched_at, row.retracted_at = event.dispatched_at, event.retracted_at
        row.retracted_by, row.dedup_key = event.retracted_by, event.dedup_key

    def undispatched(self, limit: int) -> list[OutboxEvent]:
        return [self._event_value(row) for row in self._rows.undispatched(limit)]

    def add_deliveries(self, pending: Sequence[tuple[str, str]], now: datetime) -> None:
        if not pending:
            return
        rows = []
        for event_id, recipient in pending:
            event = self._event_row(event_id)  # read already: the relay's batch, or a retraction just written
            assert event is not None, f"no outbox event {event_id}"
            rows.append(
                {
                    "event_id": event_id,
                    "loan_id": event.loan_id,
                    "sequence": event.sequence,
                    "recipient": recipient,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
        self._rows.insert_if_new(OutboxDeliveryRow, rows)

    def deliveries(self, event_id: str) -> list[Delivery]:
        return [self._delivery_value(row) for row in self._rows.deliveries(event_id)]

    def delivery(self, delivery_id: int) -> Delivery | None:
        row = self._deliveries.get(delivery_id) or self.session.get(OutboxDeliveryRow, delivery_id)
        return None if row is None else self._delivery_value(row)

    def due(self, now: datetime, limit: int, per_recipient: int | None = None) -> list[Delivery]:
        rows = self._rows.due(now, limit, per_recipient)
        wanted = {row.event_id for row in rows} - set(self._events)
        if wanted:  # their events in one query: the relay reads each due delivery's body next
            for event in self.session.scalars(select(OutboxEventRow).where(OutboxEventRow.id.in_(wanted))):
                self._events[event.id] = event
        return [self._delivery_value(row) for row in rows]

    def update_delivery(self, delivery: Delivery) -> None:
        row = self._deliveries.get(delivery.id) or self.session.get_one(OutboxDeliveryRow, delivery.id)
        row.status, row.attempts, row.url = delivery.status, delivery.attempts, delivery.url
        row.last_status_code, row.last_error = delivery.last_status_code, delivery.last_error
        row.next_attempt_at, row.delivered_at = delivery.next_attempt_at, delivery.delivered_at

    def add_attempts(self, delivery_id: int, attempts: Sequence[Attempt]) -> None:
        self.session.add_all(
            OutboxAttemptRow(
                delivery_id=delivery_id,
                attempted_at=attempt.at,
                status_code=attempt.status_code,
                error=attempt.error,
                duration_ms=attempt.duration_ms,
            )
            for attempt in attempts
        )
        newest = (
            select(OutboxAttemptRow.id)
            .where(OutboxAttemptRow.delivery_id == delivery_id)
            .order_by(OutboxAttemptRow.id.desc())
            .limit(ATTEMPT_LOG_ROWS)
        )
        self.session.execute(
            delete(OutboxAttemptRow)
            .where(OutboxAttemptRow.delivery_id == delivery_id, OutboxAttemptRow.id.not_in(newest))
            .execution_options(synchronize_session=False)
        )
