"""A loan's event log for the API (``GET /v1/loans/{id}/events``): the loan read for its reader's scope and its
events with their deliveries (``aggregator.outbox.event_log``), in one read-only unit of work."""

from __future__ import annotations

from collections.abc import Callable

from aggregator.loans import LoanScope, in_scope
from aggregator.outbox import EventLog, event_log
from store.db import Database
from store.loans import SqlLoanRepository
from store.outbox import SqlOutboxStore


class SqlLoanEventLog:
    def __init__(self, database: Database) -> None:
        self._db = database

    def for_loan(
        self, loan_id: str, scope: LoanScope, recipients: Callable[[str], bool], after: int = 0, limit: int = 50
    ) -> list[EventLog] | None:
        """The loan's events numbered after ``after`` (at most ``limit``), each with its deliveries to the recipients
        ``recipients`` lets through; None for no such loan, or one outside ``scope`` (the same answer);
        ``LoanRecordUnreadable`` for a loan in ``scope`` whose row cannot be read (outside it: ``LoanNotFound``)."""
        with self._db.unit_of_work() as uow, in_scope(scope):  # read only: nothing to commit
            loan = SqlLoanRepository(uow.session).get(loan_id)
            if loan is None or not scope.allows(loan):
                return None
            return event_log(SqlOutboxStore(uow.session), loan_id, recipients, after, limit)
