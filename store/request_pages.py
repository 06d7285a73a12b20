"""Pages of credit requests and of one request's quotes, for the API's lists (``api.pagination``), as
``aggregator.quote_store``'s records (read-only, no commit): requests newest first, strictly after a (created_at, id)
cursor; a request's quotes in rank order (best first, as the request shows them: a request's quotes are made at one
instant), strictly after a (rank, id) cursor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from aggregator.quote_store import CreditRequestRecord, OutcomeRecord, QuotedRequest, QuoteRecord
from store.aggregator import CreditRequestRow, LoanRow, ProviderOutcomeRow, QuoteRow
from store.db import Database
from store.quoting import _record


def _after(query: Select[Any], after: tuple[datetime, str] | None) -> Select[Any]:
    model = CreditRequestRow
    if after is not None:
        created_at, row_id = after
        query = query.where((model.created_at < created_at) | ((model.created_at == created_at) & (model.id < row_id)))
    return query.order_by(model.created_at.desc(), model.id.desc())


def request_page(
    session: Session, borrower_id: str | None, after: tuple[datetime, str] | None, limit: int
) -> list[tuple[QuotedRequest, str | None]]:
    """A page of credit requests (one borrower's, or every one for None), each with its quotes, its providers'
    outcomes and the loan opened from it if any."""
    query = select(CreditRequestRow)
    if borrower_id is not None:
        query = query.where(CreditRequestRow.borrower_id == borrower_id)
    rows = list(session.scalars(_after(query, after).limit(limit)))
    ids = [row.id for row in rows]
    quotes = list(session.scalars(select(QuoteRow).where(QuoteRow.request_id.in_(ids))))
    outcomes = list(
        session.scalars(
            select(ProviderOutcomeRow).where(ProviderOutcomeRow.request_id.in_(ids)).order_by(ProviderOutcomeRow.id)
        )
    )
    joined = select(QuoteRow.request_id, LoanRow.id).join(LoanRow, LoanRow.quote_id == QuoteRow.id)
    loans = {request_id: loan_id for request_id, loan_id in session.execute(joined.where(QuoteRow.request_id.in_(ids)))}
    return [
        (
            QuotedRequest(
                _record(CreditRequestRecord, row),
                [_record(OutcomeRecord, o) for o in outcomes if o.request_id == row.id],
                [_record(QuoteRecord, q) for q in sorted(quotes, key=lambda q: q.rank) if q.request_id == row.id],
            ),
            loans.get(row.id),
        )
        for row in rows
    ]


def quote_page(
    session: Session, request_id: str, borrower_id: str | None, after: tuple[int, str] | None, limit: int
) -> tuple[CreditRequestRecord, list[QuoteRecord]] | None:
    """A page of one credit request's quotes by rank, best first; None when there is no such request (or it is
    another borrower's)."""
    request = session.get(CreditRequestRow, request_id)
    if request is None or (borrower_id is not None and request.borrower_id != borrower_id):
        return None
    query = select(QuoteRow).where(QuoteRow.request_id == request_id)
    if after is not None:
        rank, quote_id = after
        query = query.where((QuoteRow.rank > rank) | ((QuoteRow.rank == rank) & (QuoteRow.id > quote_id)))
    rows = session.scalars(query.order_by(QuoteRow.rank, QuoteRow.id).limit(limit))
    return _record(CreditRequestRecord, request), [_record(QuoteRecord, row) for row in rows]


class SqlRequestPages:
    """The pages above for the API, each read in a unit of work of its own (read only: nothing to commit)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def requests(
        self, borrower_id: str | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[tuple[QuotedRequest, str | None]]:
        with self._db.unit_of_work() as uow:
            return request_page(uow.session, borrower_id, after, limit)

    def quotes(
        self, request_id: str, borrower_id: str | None, after: tuple[int, str] | None, limit: int
    ) -> tuple[CreditRequestRecord, list[QuoteRecord]] | None:
        with self._db.unit_of_work() as uow:
            return quote_page(uow.session, request_id, borrower_id, after, limit)
