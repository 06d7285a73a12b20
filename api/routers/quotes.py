"""Accepting a quote with the borrower's EIP-712 signature."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, status

from aggregator.errors import QuoteNotFound
from api.deps import CurrentBorrower, PlatformDep, ReaderPrincipal
from api.render import loan_out, quote_out
from api.schemas import AcceptIn, LoanOut, QuoteOut
from store.aggregator import CreditRequestRow, QuoteRow

router = APIRouter(prefix="/v1/quotes", tags=["quotes"])


@router.get("/{quote_id}", response_model=QuoteOut)
async def get_quote(quote_id: str, principal: ReaderPrincipal, platform: PlatformDep) -> QuoteOut:
    def load() -> QuoteOut:
        with platform.database.unit_of_work() as uow:
            row = uow.session.get(QuoteRow, quote_id)
            if row is None or (not principal.sees_everything and row.borrower_id != principal.subject_id):
                raise QuoteNotFound(quote_id)
            request = uow.session.get(CreditRequestRow, row.request_id)
            assert request is not None
            return quote_out(row, request, platform.assets)

    return await asyncio.to_thread(load)


@router.post("/{quote_id}/accept", status_code=status.HTTP_201_CREATED, response_model=LoanOut)
async def accept_quote(quote_id: str, body: AcceptIn, borrower: CurrentBorrower, platform: PlatformDep) -> LoanOut:
    """Verify the acceptance, lock the quote and relay ``openLoan`` on the quote's chain; returns the loan."""
    accepted = await platform.acceptance.accept(borrower, quote_id, body.signature)
    loan = await asyncio.to_thread(platform.acceptance.get_loan, accepted.loan_id, None)
    return loan_out(loan, platform.assets)
