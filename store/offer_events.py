"""``aggregator.offer_events``' repository over SQLAlchemy: a lender's offer events change quotes and accept records
by compare-and-set, in the unit of work that stores the event, the offer's quote rows locked first (the lock order of
an accept's: ``store.accepts``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from aggregator.accept_saga import FUND_REFUSED, FUNDING_SETTLED, TRADITIONAL, WITHDRAWN, AcceptStep
from aggregator.offer_events import OfferQuote
from store.accept_rows import AcceptRow
from store.aggregator import QuoteRow, of_offer

#: the quote statuses a withdrawal moves: an accept of the quote, or of another quote of its request, is not under way
WITHDRAWABLE = ("offered", "superseded")


class SqlOfferEventRepository:
    """Never commits: the unit of work storing the event does."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def offer_quotes(self, provider_id: str, offer_ref: str) -> list[OfferQuote]:
        quote_ids = list(
            self.session.scalars(
                select(QuoteRow.id).where(of_offer(provider_id, offer_ref)).order_by(QuoteRow.id).with_for_update()
            )
        )
        rows = self.session.execute(
            select(
                QuoteRow.id, QuoteRow.status, QuoteRow.kind, AcceptRow.step, AcceptRow.lender_state, AcceptRow.loan_id
            )
            .outerjoin(AcceptRow, AcceptRow.quote_id == QuoteRow.id)
            .where(QuoteRow.id.in_(quote_ids))
            .order_by(QuoteRow.id)
        )
        return [
            OfferQuote(quote_id, status, kind, None if step is None else AcceptStep(step), lender_state, loan_id)
            for quote_id, status, kind, step, lender_state, loan_id in rows
        ]

    def withdraw(self, quote_id: str) -> bool:
        moved = self.session.execute(
            update(QuoteRow).where(QuoteRow.id == quote_id, QuoteRow.status.in_(WITHDRAWABLE)).values(status=WITHDRAWN)
        )
        return bool(getattr(moved, "rowcount", 0) == 1)

    def fail_funding(self, quote_id: str, error: str, now: datetime) -> bool:
        moved = self.session.execute(
            update(AcceptRow)
            .where(
                AcceptRow.quote_id == quote_id,
                AcceptRow.step == AcceptStep.RECORDED.value,
                AcceptRow.kind == TRADITIONAL,
                func.coalesce(AcceptRow.lender_state, "").not_in(FUNDING_SETTLED),
            )
            .values(lender_state=FUND_REFUSED, error=error[:512], updated_at=now)
        )
        return bool(getattr(moved, "rowcount", 0) == 1)


def withdraw_quotes_of(session: Session, provider_id: str, now: datetime) -> list[str]:
    """Every unexpired quote of ``provider_id`` still acceptable (``offered``, or ``superseded`` by an accept under
    way) → ``withdrawn``, in the caller's transaction: its provider is deregistered. The rows are locked in id order
    first, as an offer event locks its offer's; returns their ids."""
    acceptable = (QuoteRow.provider_id == provider_id, QuoteRow.status.in_(WITHDRAWABLE), QuoteRow.expires_at > now)
    quote_ids = list(session.scalars(select(QuoteRow.id).where(*acceptable).order_by(QuoteRow.id).with_for_update()))
    if quote_ids:
        session.execute(
            update(QuoteRow)
            .where(QuoteRow.id.in_(quote_ids), QuoteRow.status.in_(WITHDRAWABLE))
            .values(status=WITHDRAWN)
        )
    return quote_ids
