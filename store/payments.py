"""``aggregator.payment_records``' interface over SQLAlchemy: the lenders' reported payments, written before the
operator sends ``recordOffchainRepayment`` and settled with its transaction. When a payment was made is read from the
webhook that first reported it (``provider_webhook_events``, stored before the payment is decided): its
``occurred_at``, as the lender sent it. A payment is keyed by its loan (the platform's loan id) and reference, and
names the loan's CreditAggregator: the chain's loan number alone is another deployment's loan too (0038)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    false,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from aggregator.payment_records import REFUSED, ReportedPayment
from aggregator.servicing.delinquency import Payment
from store.aggregator import LoanRow
from store.base import Base
from store.db import Database
from store.providers import ProviderWebhookEventRow
from store.records import columns, from_row
from store.types import Uint256, UtcDateTime


class OffchainPaymentRow(Base):
    """One lender payment per (loan, on-chain reference); a repeated report keeps the first."""

    __tablename__ = "offchain_payments"
    __table_args__ = (UniqueConstraint("loan_id", "reference"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    payment_ref: Mapped[str] = mapped_column(String(128))  # the lender's own reference
    reference: Mapped[str] = mapped_column(String(66))  # on-chain paymentRef: keccak256("{provider}:{payment_ref}")
    event_id: Mapped[str | None] = mapped_column(String(128), nullable=True)  # the webhook that first reported it
    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"), index=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract: Mapped[str] = mapped_column(String(42))  # the loan's CreditAggregator, as the loan names it (0038)
    onchain_loan_id: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(Uint256())  # as reported, in the loan asset's base units
    status: Mapped[str] = mapped_column(String(16))  # accepted | recorded | refused
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # sent on-chain instead of amount by the latest attempt: the payment closing the loan (0027)
    recorded_amount: Mapped[int | None] = mapped_column(Uint256(), nullable=True)
    # the payment pays the loan in full: each attempt is sent as what the loan owes then (0038)
    closes_loan: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SqlPaymentRecords:
    """The payment records in SQL; the unit of work commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def accept(self, payment: ReportedPayment) -> ReportedPayment:
        # INSERT … ON CONFLICT DO NOTHING rather than a savepoint around an INSERT: on SQLite, pysqlite opens the
        # transaction only before DML, so a SAVEPOINT first in the unit of work opened it and its RELEASE committed
        # the payment even when the unit of work then rolled back
        now = datetime.now(UTC)
        insert = pg_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = (
            insert(OffchainPaymentRow)
            .values(**columns(payment), received_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["loan_id", "reference"])
        )
        self.session.execute(statement)
        kept = self.kept(payment.loan_id, payment.reference)
        assert kept is not None  # inserted, or there before
        return kept

    def _where(self, loan_id: str, reference: str) -> tuple[ColumnElement[bool], ...]:
        return (OffchainPaymentRow.loan_id == loan_id, OffchainPaymentRow.reference == reference)

    def hold_loan(self, loan_id: str) -> None:
        # FOR UPDATE on PostgreSQL (nothing on SQLite, where the caller's lock serializes the one process)
        self.session.execute(select(LoanRow.id).where(LoanRow.id == loan_id).with_for_update())

    def kept(self, loan_id: str, reference: str) -> ReportedPayment | None:
        row = self.session.scalars(select(OffchainPaymentRow).where(*self._where(loan_id, reference))).one_or_none()
        return None if row is None else from_row(ReportedPayment, row)

    def reported(self, loan_id: str, through: str | None = None) -> list[Payment]:
        event = ProviderWebhookEventRow
        where = [OffchainPaymentRow.loan_id == loan_id, OffchainPaymentRow.status != REFUSED]
        if through is not None:
            last = select(OffchainPaymentRow.id).where(*self._where(loan_id, through)).scalar_subquery()
            where.append(OffchainPaymentRow.id <= last)
        rows = self.session.execute(
            select(OffchainPaymentRow.amount, OffchainPaymentRow.received_at, event.payload)
            .outerjoin(
                event,
                (event.provider_id == OffchainPaymentRow.provider_id) & (event.event_id == OffchainPaymentRow.event_id),
            )
            .where(*where)
            .order_by(OffchainPaymentRow.id)
        )
        # the amount made an int here: a Uint256 column is text on SQLite
        return [Payment(said_made_at(payload, received_at), int(amount)) for amount, received_at, payload in rows]

    def closes(self, loan_id: str, reference: str) -> None:
        self.session.execute(
            update(OffchainPaymentRow)
            .where(*self._where(loan_id, reference))
            .values(closes_loan=True, updated_at=datetime.now(UTC))
        )

    def send_as(self, loan_id: str, reference: str, recorded_amount: int | None) -> None:
        self.session.execute(
            update(OffchainPaymentRow)
            .where(*self._where(loan_id, reference))
            .values(recorded_amount=recorded_amount, updated_at=datetime.now(UTC))
        )

    def settle(self, loan_id: str, reference: str, status: str, tx_hash: str | None, block: int | None) -> None:
        self.session.execute(
            update(OffchainPaymentRow)
            .where(*self._where(loan_id, reference))
            .values(status=status, tx_hash=tx_hash, block_number=block, updated_at=datetime.now(UTC))
        )

    def for_aggregator(self, chain_id: int, aggregator: str, leaving_out: Sequence[int] = ()) -> list[ReportedPayment]:
        """The payments of loans of ``aggregator``, but those ``leaving_out`` (by id: unreadable ones)."""
        rows = self.session.scalars(
            select(OffchainPaymentRow)
            .where(
                OffchainPaymentRow.chain_id == chain_id,
                func.lower(OffchainPaymentRow.contract) == aggregator.lower(),
                OffchainPaymentRow.id.not_in(leaving_out),
            )
            .order_by(OffchainPaymentRow.id)
        )
        return [from_row(ReportedPayment, row) for row in rows]


def said_made_at(payload: dict[str, Any] | None, received_at: datetime) -> int:
    """When the lender said the payment was made (unix seconds): its webhook's ``occurred_at`` (UTC when it names no
    offset), else when the payment was accepted. The one date the closing rule (``reported``) and servicing
    (``store.servicing.recorded_repayments``) judge a lender's payment by."""
    said = None if payload is None else payload.get("occurred_at")
    if not isinstance(said, str):
        return int(received_at.timestamp())
    at = datetime.fromisoformat(said)
    return int((at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp())


class SqlPaymentUnitOfWork:
    def __init__(self, session: Session, commit: Callable[[], None]) -> None:
        self.payments = SqlPaymentRecords(session)
        self._commit = commit

    def commit(self) -> None:
        self._commit()


class SqlPaymentStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    @contextmanager
    def unit_of_work(self) -> Iterator[SqlPaymentUnitOfWork]:
        with self._db.unit_of_work() as uow:
            yield SqlPaymentUnitOfWork(uow.session, uow.commit)
