"""What servicing reads and writes: the open loans of a chain (the keeper's and the default job's worklist), the
past-due buckets already announced per loan in its current late period (``loan.past_due`` goes out once per bucket
entered; the rows go when the loan is current again), and the closed loans whose collateral still waits for
``claimCollateral`` (the keeper's claim sweep, from chain facts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, ForeignKey, Row, String, and_, delete, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from aggregator.accept_saga import FUND_REFUSED, TRADITIONAL, funding_pending
from aggregator.payment_records import REFUSED
from aggregator.servicing.payment_times import RecordedRepayment
from aggregator.servicing.repository import OpenLoan as OpenLoan
from aggregator.servicing.repository import UnclaimedCollateral as UnclaimedCollateral
from chain.transactions import BARRED_PAYLOAD
from store.accept_rows import AcceptRow
from store.aggregator import LoanRow, QuoteRow
from store.base import Base
from store.chain_rows import DROPPED, FAILED, REVERTED, ChainIntentRow
from store.db import Database
from store.leases import Lease, SqlLeaseStore, fence
from store.ledger import ChainFactRow, LoanRepaymentRow
from store.outbox import SqlOutboxStore
from store.payments import OffchainPaymentRow, said_made_at
from store.providers import ProviderWebhookEventRow
from store.types import UtcDateTime
from store.unreadable import RowNotRead, rows_each

OPEN_STATUSES = ("active", "defaulted")


class PastDueNoticeRow(Base):
    """A past-due bucket a loan entered in its current late period, announced once (``loan.past_due`` written to the
    outbox with it); deleted when the loan is current again, so that its next late period is announced too."""

    __tablename__ = "loan_past_due_notices"

    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(8), primary_key=True)
    days_past_due: Mapped[int] = mapped_column()
    as_of: Mapped[datetime] = mapped_column(UtcDateTime())


def recorded_repayments(session: Session, loan_ids: Sequence[str]) -> dict[str, list[RecordedRepayment]]:
    """The repayments (``LoanRepaid`` facts) the ledger recorded of these loans, each with its fact's block, in chain
    order, by loan id: one query. A repayment the operator recorded for a lender's payment (its ``paymentRef`` is a
    payment of the loan kept in ``offchain_payments``, not refused) carries when the lender said it was made, as the
    closing rule reads it (``store.payments.said_made_at``)."""
    found: dict[str, list[RecordedRepayment]] = {loan_id: [] for loan_id in loan_ids}
    paid, event = OffchainPaymentRow, ProviderWebhookEventRow
    rows = session.execute(
        select(LoanRepaymentRow.loan_id, LoanRepaymentRow.interest_paid, LoanRepaymentRow.principal_paid,
               ChainFactRow.block_hash, paid.id, paid.received_at, event.payload)
        .join(ChainFactRow, ChainFactRow.id == LoanRepaymentRow.fact_id)
        .outerjoin(paid, (paid.loan_id == LoanRepaymentRow.loan_id) & (paid.reference == LoanRepaymentRow.payment_ref)
                   & (paid.status != REFUSED))
        .outerjoin(event, (event.provider_id == paid.provider_id) & (event.event_id == paid.event_id))
        .where(LoanRepaymentRow.loan_id.in_(list(loan_ids)))
        .order_by(ChainFactRow.block_number, ChainFactRow.log_index)
    )  # fmt: skip
    for loan_id, interest, principal, block_hash, payment, received_at, payload in rows:
        said = None if payment is None else said_made_at(payload, received_at)
        found[loan_id].append(RecordedRepayment(block_hash, int(interest) + int(principal), said))
    return found


def _open_loan(found: Row[LoanRow, Any, Any, str | None, str | None]) -> OpenLoan:
    """A readable worklist row: the loan, its quote's disclosure and offer, its accept's lender state and step."""
    row, disclosure, offer, lender_state, step = found
    return OpenLoan(
        id=row.id,
        loan_ref=int(row.onchain_loan_id or 0),
        status=row.status,
        pool=row.pool,
        provider_id=row.provider_id,
        asset_address=row.asset_address,
        collateral_asset=row.collateral_asset,
        outstanding_principal=int(row.outstanding_principal or 0),
        repaid=int(row.interest_paid or 0) + int(row.principal_paid or 0),
        disclosure=disclosure,
        unfunded=row.pool is None and lender_state == FUND_REFUSED,
        funding_pending=row.pool is None and funding_pending(TRADITIONAL, step, lender_state),
        provider_ref=None if not offer or offer.get("providerRef") is None else str(offer["providerRef"]),
    )


class SqlServicingRepository:
    """``aggregator.servicing.repository.ServicingRepository`` in the caller's session; never commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def open_loans(self, chain_id: int, aggregator: str) -> list[OpenLoan]:
        query = (
            select(LoanRow, QuoteRow.disclosure, QuoteRow.offer, AcceptRow.lender_state, AcceptRow.step)
            .outerjoin(QuoteRow, QuoteRow.id == LoanRow.quote_id)
            .outerjoin(AcceptRow, AcceptRow.loan_id == LoanRow.id)
            .where(
                LoanRow.chain_id == chain_id,
                LoanRow.contract == aggregator,
                LoanRow.status.in_(OPEN_STATUSES),
                LoanRow.onchain_loan_id.is_not(None),
            )
            .order_by(LoanRow.onchain_loan_id)
        )
        return [
            self._unreadable(found) if isinstance(found, RowNotRead) else _open_loan(found)
            for found in rows_each(self.session, query, LoanRow.id)
        ]

    def _unreadable(self, found: RowNotRead) -> OpenLoan:
        """A loan whose row does not read, with its on-chain id when that column alone reads (else 0)."""
        raw = self.session.scalar(select(type_coerce(LoanRow.onchain_loan_id, String)).where(LoanRow.id == found.key))
        ref = int(raw) if raw is not None and raw.isascii() and raw.isdigit() else 0
        return OpenLoan(found.key, ref, "", None, None, None, None, 0, unreadable=found.reason)

    def announced(self, loan_id: str) -> set[str]:
        return set(self.session.scalars(select(PastDueNoticeRow.bucket).where(PastDueNoticeRow.loan_id == loan_id)))

    def announce(self, loan_id: str, bucket: str, days_past_due: int, as_of: datetime) -> bool:
        """Record that ``loan_id`` entered ``bucket``; False when it was recorded before (by this or another
        process), so the caller writes its event only once."""
        # INSERT … ON CONFLICT DO NOTHING rather than a savepoint around an INSERT: on SQLite, pysqlite opens the
        # transaction only before DML, so a SAVEPOINT first in the unit of work opened it and its RELEASE committed
        # the notice alone; a round that then failed kept the notice and lost its loan.past_due for good
        insert = pg_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = (
            insert(PastDueNoticeRow)
            .values(loan_id=loan_id, bucket=bucket, days_past_due=days_past_due, as_of=as_of)
            .on_conflict_do_nothing(index_elements=["loan_id", "bucket"])
            .returning(PastDueNoticeRow.bucket)  # a row when inserted (the driver's rowcount may read -1)
        )
        return self.session.execute(statement).first() is not None

    def clear(self, loan_id: str) -> None:
        """Forget the buckets ``loan_id`` was announced in: it is current again (its late period is over)."""
        self.session.execute(delete(PastDueNoticeRow).where(PastDueNoticeRow.loan_id == loan_id))

    def repayments(self, loan_ids: Sequence[str]) -> dict[str, list[RecordedRepayment]]:
        """The repayments the ledger recorded of these loans, in chain order, by loan id (one query)."""
        return recorded_repayments(self.session, loan_ids)

    def unclaimed_collateral(self, chain_id: int, manager: str) -> list[UnclaimedCollateral]:
        """The CollateralManager ``manager``'s ``CollateralClaimable`` facts not followed (in chain order) by a
        ``CollateralRemoved`` of the same loan, oldest first."""
        claimable, removed = aliased(ChainFactRow), aliased(ChainFactRow)
        later_removal = (
            select(removed.id)
            .where(
                removed.chain_id == claimable.chain_id,
                removed.address == claimable.address,
                removed.loan_ref == claimable.loan_ref,
                removed.event == "CollateralRemoved",
                or_(
                    removed.block_number > claimable.block_number,
                    and_(removed.block_number == claimable.block_number, removed.log_index > claimable.log_index),
                ),
            )
            .exists()
        )
        rows = self.session.scalars(
            select(claimable)
            .where(
                claimable.chain_id == chain_id,
                claimable.address == manager,
                claimable.event == "CollateralClaimable",
                claimable.loan_ref.is_not(None),
                ~later_removal,
            )
            .order_by(claimable.block_number, claimable.log_index)
        )
        return [
            UnclaimedCollateral(
                loan_ref=int(row.loan_ref or 0),
                borrower=str(row.args["borrower"]),
                asset=str(row.args["asset"]),
                amount=int(row.args["amount"]),
                tx_hash=row.tx_hash,
                block_number=row.block_number,
            )
            for row in rows
        ]

    def held_loans(self, chain_id: int, manager: str) -> set[int]:
        """Loans held by the default job's ``holdLiquidation`` intents on ``manager`` (keyed
        ``holdLiquidation:<chain id>:<manager>:<loan id>``, a later attempt ``:<n>`` after it) — an attempt in flight
        or confirmed, not barred — with no ``releaseLiquidationHold`` attempt of the same loan in flight or confirmed:
        a release the node refused or dropped, or that reverted, released nothing, and the loan is released again."""
        taken = ChainIntentRow.status.not_in((REVERTED, FAILED, DROPPED))
        released = self._loans_of(f"releaseLiquidationHold:{chain_id}:{manager}:", taken)
        held = self._loans_of(f"holdLiquidation:{chain_id}:{manager}:", taken,
                              ChainIntentRow.payload_hash != BARRED_PAYLOAD)  # fmt: skip
        return held - released

    def _loans_of(self, prefix: str, *where: ColumnElement[bool]) -> set[int]:
        """The loan ids the intents keyed ``<prefix><loan id>[:<attempt>]`` that match ``where`` name."""
        keys = self.session.scalars(
            select(ChainIntentRow.key).where(ChainIntentRow.key.startswith(prefix, autoescape=True), *where)
        )
        loan_ids = (key[len(prefix) :].split(":", 1)[0] for key in keys)
        return {int(loan_id) for loan_id in loan_ids if loan_id.isdigit()}


class SqlServicingUnitOfWork:
    def __init__(self, session: Session, commit: Callable[[], None]) -> None:
        self.session, self._commit = session, commit
        self.servicing = SqlServicingRepository(session)
        self.outbox = SqlOutboxStore(session)

    def fence(self, lease: Lease) -> None:
        fence(self.session, lease)

    def commit(self) -> None:
        self._commit()


class SqlServicingStore:
    """``aggregator.servicing.repository.ServicingStore`` on ``database``."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self.leases = SqlLeaseStore(database.sessions)

    @contextmanager
    def unit_of_work(self) -> Iterator[SqlServicingUnitOfWork]:
        with self._db.unit_of_work() as uow:
            yield SqlServicingUnitOfWork(uow.session, uow.commit)
