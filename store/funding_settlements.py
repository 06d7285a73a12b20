"""An admin's funding settlement of an unfunded loan in SQL (``aggregator.funding_settlement``): the accept's
compare-and-set and the audit entry, in one transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, exists, select, update
from sqlalchemy.orm import Session

from aggregator.accept_saga import FUND_REFUSED, AcceptStep
from aggregator.funding_settlement import FUNDED, NOT_FUNDED, UnfundedLoan
from compliance.audit import AuditKind
from store.accept_rows import AcceptRow
from store.aggregator import LoanRow
from store.compliance import AuditEntryRow, SqlAuditLog
from store.db import Database
from store.loans import UNFUNDED
from store.servicing import OPEN_STATUSES


class SqlFundingSettlementStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def unfunded(self, loan_id: str) -> UnfundedLoan | None:
        return self._open_loan(loan_id, UNFUNDED)

    def settled_funded(self, loan_id: str) -> UnfundedLoan | None:
        settled = exists().where(AuditEntryRow.subject == loan_id, AuditEntryRow.kind == AuditKind.FUNDING_SETTLEMENT)
        return self._open_loan(loan_id, LoanRow.pool.is_(None), AcceptRow.lender_state == "funded", settled)

    def _open_loan(self, loan_id: str, *conditions: ColumnElement[bool]) -> UnfundedLoan | None:
        """The loan ``loan_id`` when it is open on-chain, its accept read with it, and it meets ``conditions``."""
        with self._db.unit_of_work() as uow:  # read only
            found = uow.session.execute(
                select(LoanRow.id, LoanRow.chain_name, LoanRow.chain_id, LoanRow.onchain_loan_id, LoanRow.contract)
                .join(AcceptRow, AcceptRow.quote_id == LoanRow.quote_id)
                .where(
                    LoanRow.id == loan_id,
                    LoanRow.status.in_(OPEN_STATUSES),
                    LoanRow.onchain_loan_id.is_not(None),
                    *conditions,
                )
            ).first()
        if found is None:
            return None
        return UnfundedLoan(found.id, found.chain_name, found.chain_id, int(found.onchain_loan_id), found.contract)

    def loan_exists(self, loan_id: str) -> bool:
        with self._db.unit_of_work() as uow:
            # its id alone: a row holding a value its columns cannot read back still exists (``store.unreadable``)
            return uow.session.scalar(select(LoanRow.id).where(LoanRow.id == loan_id)) is not None

    def settle_funded(self, loan: UnfundedLoan, actor: str, note: str, now: datetime) -> bool:
        with self._db.unit_of_work() as uow:
            open_loan = select(LoanRow.quote_id).where(LoanRow.id == loan.id, LoanRow.status.in_(OPEN_STATUSES))
            moved = uow.session.execute(
                update(AcceptRow)
                .where(
                    AcceptRow.loan_id == loan.id,
                    AcceptRow.quote_id.in_(open_loan),
                    AcceptRow.step == AcceptStep.RECORDED.value,
                    AcceptRow.lender_state == FUND_REFUSED,
                )
                .values(step=AcceptStep.FUNDED.value, lender_state="funded", updated_at=now)
                .returning(AcceptRow.error)
            ).first()
            if moved is None:
                return False
            _audit(uow.session, loan, FUNDED, actor, note, now, lender_said=moved.error)
            uow.commit()
        return True

    def record_not_funded(self, loan: UnfundedLoan, actor: str, note: str, now: datetime) -> None:
        with self._db.unit_of_work() as uow:
            _audit(uow.session, loan, NOT_FUNDED, actor, note, now)
            uow.commit()


def _audit(
    session: Session,
    loan: UnfundedLoan,
    outcome: str,
    actor: str,
    note: str,
    now: datetime,
    lender_said: str | None = None,
) -> None:
    data = {"loan": loan.id, "chainId": loan.chain_id, "loanRef": loan.loan_ref, "outcome": outcome, "by": actor}
    data |= {"note": note} | ({} if lender_said is None else {"lenderSaid": lender_said})
    SqlAuditLog(session).append(AuditKind.FUNDING_SETTLEMENT, loan.id, data, now)
