"""The transactional outbox: loan events written in the transaction of the ledger change they report, and the log
of their delivery to webhooks.

``outbox_events`` holds one row per event: its id (what a receiver deduplicates on), the loan, the loan's own
``sequence`` (1, 2, 3 … with no gap, in commit order: ``outbox_sequences`` holds each loan's last number and its row
lock orders concurrent writers of one loan), a ``dedup_key`` unique per loan (a fact applied again, or a job that
runs twice, writes no second event), and the body sent, fixed when written. ``dispatched_at`` is set when the relay
has resolved the event's recipients into ``outbox_deliveries`` — one row per (event, recipient) with its status,
attempts, next attempt and last error — and every attempt is logged in ``outbox_attempts``.

An event whose chain fact a reorg removed is *retracted* (``aggregator.retraction``): ``retracted_at`` is set, its
deliveries still pending are ``cancelled``, and, when some recipient already had it, ``retracted_by`` names the
``loan.event_retracted`` event written to tell them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint, and_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from store.base import Base
from store.types import UtcDateTime

PENDING, DELIVERED, NO_DESTINATION, CANCELLED = "pending", "delivered", "no_destination", "cancelled"


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


class SqlOutboxRepository:
    """Outbox rows in the caller's session; never commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_sequence(self, loan_id: str) -> int:
        """The loan's last event number, its row locked until the caller's transaction ends (created at 0)."""
        insert = pg_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        self.session.execute(
            insert(OutboxSequenceRow).values(loan_id=loan_id, last_sequence=0).on_conflict_do_nothing()
        )
        return int(
            self.session.execute(
                select(OutboxSequenceRow.last_sequence).where(OutboxSequenceRow.loan_id == loan_id).with_for_update()
            ).scalar_one()
        )

    def set_sequence(self, loan_id: str, sequence: int) -> None:
        self.session.execute(
            update(OutboxSequenceRow).where(OutboxSequenceRow.loan_id == loan_id).values(last_sequence=sequence)
        )

    def event_by_key(self, loan_id: str, dedup_key: str) -> str | None:
        return self.session.scalars(
            select(OutboxEventRow.id).where(OutboxEventRow.loan_id == loan_id, OutboxEventRow.dedup_key == dedup_key)
        ).one_or_none()

    def add(self, row: OutboxEventRow | OutboxDeliveryRow | OutboxAttemptRow) -> None:
        self.session.add(row)

    def delivery(self, event_id: str, recipient: str) -> OutboxDeliveryRow | None:
        return self.session.scalars(
            select(OutboxDeliveryRow).where(
                OutboxDeliveryRow.event_id == event_id, OutboxDeliveryRow.recipient == recipient
            )
        ).one_or_none()

    def events(self, loan_id: str) -> list[OutboxEventRow]:
        query = select(OutboxEventRow).where(OutboxEventRow.loan_id == loan_id)
        return list(self.session.scalars(query.order_by(OutboxEventRow.sequence)))

    def undispatched(self, limit: int) -> list[OutboxEventRow]:
        """Events whose recipients are not resolved yet, oldest first (each loan's in its order)."""
        query = (
            select(OutboxEventRow)
            .where(OutboxEventRow.dispatched_at.is_(None))
            .order_by(OutboxEventRow.occurred_at, OutboxEventRow.loan_id, OutboxEventRow.sequence)
            .limit(limit)
        )
        return list(self.session.scalars(query))

    def due(self, now: datetime, limit: int) -> Sequence[OutboxDeliveryRow]:
        """Pending deliveries due now that head their (loan, recipient) stream: no earlier event of the loan is
        still pending for that recipient and none is waiting to be dispatched, so each stream is delivered in order
        and one receiver that fails holds back only its own loans."""
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
        query = (
            select(OutboxDeliveryRow)
            .where(
                OutboxDeliveryRow.status == PENDING,
                OutboxDeliveryRow.next_attempt_at <= now,
                ~blocked,
                ~undispatched,
            )
            .order_by(OutboxDeliveryRow.next_attempt_at, OutboxDeliveryRow.id)
            .limit(limit)
        )
        return list(self.session.scalars(query))

    def event(self, event_id: str) -> OutboxEventRow:
        return self.session.get_one(OutboxEventRow, event_id)

    def deliveries(self, event_id: str) -> list[OutboxDeliveryRow]:
        query = select(OutboxDeliveryRow).where(OutboxDeliveryRow.event_id == event_id)
        return list(self.session.scalars(query.order_by(OutboxDeliveryRow.id)))

    def attempts(self, delivery_id: int) -> list[OutboxAttemptRow]:
        query = select(OutboxAttemptRow).where(OutboxAttemptRow.delivery_id == delivery_id)
        return list(self.session.scalars(query.order_by(OutboxAttemptRow.id)))
