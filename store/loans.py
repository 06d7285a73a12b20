"""The loan ledger's reads in SQL (``aggregator.loans.LoanStore``): ORM rows become ``LoanRecord`` values here and
never leave ``store``."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, union_all
from sqlalchemy.orm import Session

from aggregator.accept_saga import FUND_REFUSED, FUNDING_SETTLED, TRADITIONAL, AcceptStep, funding_pending
from aggregator.errors import AmbiguousOfferRef, LoanRecordUnreadable
from aggregator.loans import (
    ChainRef,
    CollateralMovement,
    Liquidation,
    LoanEntries,
    LoanFlag,
    LoanRecord,
    LoanScope,
    Repayment,
)
from aggregator.servicing.payment_times import RecordedRepayment
from store.accept_rows import AcceptRow
from store.aggregator import LoanRow, QuoteRow, of_offer
from store.db import Database
from store.ledger import (
    ChainFactRow,
    LoanCollateralMovementRow,
    LoanLiquidationRow,
    LoanRepaymentRow,
    SqlLedgerRepository,
)
from store.servicing import OPEN_STATUSES, recorded_repayments
from store.types import UnreadableValue
from store.unreadable import RowNotRead, rows_each

log = logging.getLogger(__name__)

#: the ``LoanRecord`` fields a ``loans`` row holds (``unfunded`` and ``funding_pending`` are its accept's)
COLUMNS = tuple(name for name in LoanRecord.__dataclass_fields__ if name not in ("unfunded", "funding_pending"))

#: a loan funded off-chain whose lender refused, or reported failed, the funding (its accept's ``fund-refused``)
UNFUNDED: ColumnElement[bool] = and_(LoanRow.pool.is_(None), AcceptRow.lender_state == FUND_REFUSED)
#: a loan funded off-chain whose lender has not answered the funding instruction yet (``accept_saga.funding_pending``)
FUNDING_PENDING: ColumnElement[bool] = and_(
    LoanRow.pool.is_(None),
    AcceptRow.step == AcceptStep.RECORDED.value,
    func.coalesce(AcceptRow.lender_state, "").not_in(FUNDING_SETTLED),
)
#: each ``LoanOut`` flag a list may be filtered by, as a condition on ``_with_funding``'s rows
FLAGS: dict[LoanFlag, ColumnElement[bool]] = {
    LoanFlag.UNFUNDED: UNFUNDED,
    LoanFlag.FUNDING_PENDING: FUNDING_PENDING,
    LoanFlag.OPENED_OUTSIDE_ACCEPT: LoanRow.opened_outside_accept.is_(True),
    LoanFlag.NO_QUOTE: LoanRow.quote_id.is_(None),
}


def loan_columns(loan: LoanRecord) -> dict[str, Any]:
    """The ``loans`` row's column values of ``loan``."""
    return {name: getattr(loan, name) for name in COLUMNS}


def loan_record(row: LoanRow, unfunded: bool = False, pending: bool = False) -> LoanRecord:
    return LoanRecord(**{name: getattr(row, name) for name in COLUMNS}, unfunded=unfunded, funding_pending=pending)


def _with_funding() -> Select[LoanRow, str | None, str | None]:
    """Loans with their accept's ``lender_state`` and ``step`` (None without an accept), which say whether one is
    unfunded or its funding pending."""
    return select(LoanRow, AcceptRow.lender_state, AcceptRow.step).outerjoin(
        AcceptRow, AcceptRow.quote_id == LoanRow.quote_id
    )


def _funded_record(row: LoanRow, lender_state: str | None, step: str | None) -> LoanRecord:
    off_chain = row.pool is None
    pending = off_chain and funding_pending(TRADITIONAL, step, lender_state)
    return loan_record(row, unfunded=off_chain and lender_state == FUND_REFUSED, pending=pending)


def _where(fact: ChainFactRow) -> ChainRef:
    return ChainRef(fact.block_number, fact.block_hash, fact.tx_hash, fact.log_index)


class SqlLoanRepository:
    """Reads of the loan ledger in the caller's session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, loan_id: str) -> LoanRecord | None:
        """The loan's record; ``LoanRecordUnreadable`` when its row holds a value that cannot be read back."""
        try:
            found = self.session.execute(_with_funding().where(LoanRow.id == loan_id)).first()
        except UnreadableValue as err:
            raise self._unreadable(loan_id, err) from err
        return None if found is None else _funded_record(*found)

    def _unreadable(self, loan_id: str, err: UnreadableValue) -> LoanRecordUnreadable:
        log.error("loan %s: its ledger row cannot be read: %s", loan_id, err)
        owners = self.session.execute(
            select(LoanRow.borrower_id, LoanRow.provider_id).where(LoanRow.id == loan_id)
        ).first()
        borrower_id, provider_id = owners if owners is not None else (None, None)
        return LoanRecordUnreadable(loan_id, str(err), borrower_id, provider_id)

    def entries(self, loan_id: str) -> LoanEntries:
        try:
            return self._entries(loan_id)
        except UnreadableValue as err:  # a ledger entry of the loan holds it
            raise self._unreadable(loan_id, err) from err

    def _entries(self, loan_id: str) -> LoanEntries:
        def rows(model: Any) -> list[Any]:
            return list(self.session.scalars(select(model).where(model.loan_id == loan_id).order_by(model.fact_id)))

        repayments: list[LoanRepaymentRow] = rows(LoanRepaymentRow)
        movements: list[LoanCollateralMovementRow] = rows(LoanCollateralMovementRow)
        liquidations: list[LoanLiquidationRow] = rows(LoanLiquidationRow)
        ids = {row.fact_id for group in (repayments, movements, liquidations) for row in group}
        facts = {fact.id: _where(fact) for fact in SqlLedgerRepository(self.session).facts(ids)}
        return LoanEntries(
            [
                Repayment(
                    r.payer, r.interest_paid, r.principal_paid, r.outstanding_principal, r.payment_ref, facts[r.fact_id]
                )
                for r in repayments
            ],
            [CollateralMovement(m.direction, m.account, m.asset, m.amount, facts[m.fact_id]) for m in movements],
            [Liquidation(q.liquidator, q.debt_repaid, q.collateral_seized, facts[q.fact_id]) for q in liquidations],
        )

    def repayments(self, loan_ids: Sequence[str]) -> dict[str, list[RecordedRepayment]]:
        """The repayments the ledger recorded of these loans, in chain order, by loan id (one query)."""
        return recorded_repayments(self.session, loan_ids)

    def disclosure(self, quote_id: str) -> dict[str, Any] | None:
        quote = self.session.get(QuoteRow, quote_id)
        return None if quote is None else dict(quote.disclosure)

    def disclosures(self, quote_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        rows = self.session.execute(select(QuoteRow.id, QuoteRow.disclosure).where(QuoteRow.id.in_(quote_ids)))
        return {quote_id: dict(disclosure) for quote_id, disclosure in rows}

    def by_provider_ref(self, provider_id: str, provider_ref: str) -> LoanRecord | None:
        """The loan opened from ``provider_id``'s offer ``provider_ref`` (its own reference, in the quote's offer);
        ``AmbiguousOfferRef`` when the lender gave that reference to offers of more than one loan."""
        quote_ids = select(QuoteRow.id).where(of_offer(provider_id, provider_ref))
        rows = self.session.scalars(select(LoanRow).where(LoanRow.quote_id.in_(quote_ids)).limit(2)).all()
        if len(rows) > 1:
            raise AmbiguousOfferRef(provider_id, provider_ref)
        return loan_record(rows[0]) if rows else None

    def page(
        self, scope: LoanScope, after: tuple[datetime, str] | None, limit: int, flag: LoanFlag | None = None
    ) -> list[LoanRecord]:
        query = _with_funding()
        if flag is not None:
            query = query.where(FLAGS[flag])
        if scope.borrower_id is not None:
            query = query.where(LoanRow.borrower_id == scope.borrower_id)
        if scope.provider_id is not None:
            query = query.where(LoanRow.provider_id == scope.provider_id)
        if after is not None:
            created_at, loan_id = after
            query = query.where(
                or_(LoanRow.created_at < created_at, and_(LoanRow.created_at == created_at, LoanRow.id < loan_id))
            )
        newest_first = query.order_by(LoanRow.created_at.desc(), LoanRow.id.desc()).limit(limit)
        records = []
        for found in rows_each(self.session, newest_first, LoanRow.id):
            if isinstance(found, RowNotRead):  # left out of the list, said for an operator: the others are listed
                log.error("loan %s left out of a list of loans: its ledger row cannot be read: %s", found.key,
                          found.reason)  # fmt: skip
                continue
            records.append(_funded_record(*found))
        return records

    def open_loans_of_other_contracts(self, chain_id: int, aggregator: str) -> dict[str, int]:
        """How many loans the ledger shows open (active or in default, servicing's ``OPEN_STATUSES``) on chain
        ``chain_id`` of each CreditAggregator other than ``aggregator`` (as the ledger writes it: the deployment
        record's checksummed address, which servicing's worklist matches exactly): the loans no worker services.

        "Other" is two ranges, each its own query, not ``!=``: each is a range scan of the unique index on
        (chain_id, contract, …) on PostgreSQL and SQLite alike, so the count reads only the earlier deployments'
        loans, never the current deployment's (``!=``, or the two ranges OR-ed on SQLite, read every loan of the
        chain)."""
        ranges = (LoanRow.contract < aggregator, LoanRow.contract > aggregator)
        counts = union_all(
            *(
                select(LoanRow.contract.label("contract"), func.count().label("loans"))
                .where(LoanRow.chain_id == chain_id, other, LoanRow.status.in_(OPEN_STATUSES))
                .group_by(LoanRow.contract)
                for other in ranges
            )
        ).subquery()
        rows = self.session.execute(select(counts.c.contract, counts.c.loans).order_by(counts.c.contract))
        return {str(contract): int(loans) for contract, loans in rows}


class SqlLoanStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    @contextmanager
    def reading(self) -> Iterator[SqlLoanRepository]:
        with self._db.unit_of_work() as uow:  # read only: nothing to commit
            yield SqlLoanRepository(uow.session)

    def open_loans_of_other_contracts(self, chain_id: int, aggregator: str) -> dict[str, int]:
        """``SqlLoanRepository.open_loans_of_other_contracts`` in a unit of work of its own."""
        with self.reading() as loans:
            return loans.open_loans_of_other_contracts(chain_id, aggregator)
