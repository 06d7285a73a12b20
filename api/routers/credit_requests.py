"""Borrowers ask for credit once and get ranked, signed quotes."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from fastapi import APIRouter, HTTPException, Request, status
from sqlalchemy import select

from aggregator.quoting import CreditRequestSpec
from api.client import client_address
from api.deps import CurrentBorrower, PlatformDep, ReaderPrincipal
from api.idempotency import Idempotent
from api.logs import correlation_id
from api.render import credit_request_out
from api.schemas import CreditRequestIn, CreditRequestOut
from store.aggregator import CreditRequestRow, LoanRow, ProviderOutcomeRow, QuoteRow

router = APIRouter(prefix="/v1/credit-requests", tags=["credit requests"])


def _load(platform: PlatformDep, request_id: str, borrower_id: str | None) -> CreditRequestOut:
    with platform.database.unit_of_work() as uow:
        row = uow.session.get(CreditRequestRow, request_id)
        if row is None or (borrower_id is not None and row.borrower_id != borrower_id):
            raise HTTPException(404, f"no credit request {request_id}")
        quotes = list(uow.session.scalars(select(QuoteRow).where(QuoteRow.request_id == request_id)))
        outcomes = list(
            uow.session.scalars(select(ProviderOutcomeRow).where(ProviderOutcomeRow.request_id == request_id))
        )
        loan_id = uow.session.scalars(
            select(LoanRow.id).where(LoanRow.quote_id.in_([quote.id for quote in quotes]))
        ).first()
        return credit_request_out(row, quotes, outcomes, platform.assets, loan_id)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CreditRequestOut, dependencies=[Idempotent])
async def create_credit_request(
    body: CreditRequestIn, borrower: CurrentBorrower, platform: PlatformDep, request: Request
) -> CreditRequestOut:
    """Screen (KYC, sanctions, jurisdiction), score, and fan out to every eligible provider within one deadline;
    returns the ranked, signed quotes, or the reasons of a decline (adverse-action notice)."""
    if body.credit_profile is not None:
        await asyncio.to_thread(platform.borrowers.save_profile, borrower.id, body.credit_profile)
        borrower = replace(borrower, profile=body.credit_profile)
    spec = CreditRequestSpec(
        amount=body.amount,
        asset=body.asset,
        term_days=body.term_days,
        purpose=body.purpose,
        collateral_asset=body.collateral.asset,
        collateral_amount=body.collateral.amount,
        preferred_chains=tuple(body.preferred_chains),
    )
    client_ip = client_address(request, platform.settings.trusted_proxy_networks)
    request_id = await platform.quoting.request_credit(borrower, spec, client_ip, correlation_id.get())
    return await asyncio.to_thread(_load, platform, request_id, borrower.id)


@router.get("/{request_id}", response_model=CreditRequestOut)
async def get_credit_request(request_id: str, principal: ReaderPrincipal, platform: PlatformDep) -> CreditRequestOut:
    borrower_id = None if principal.sees_everything else principal.subject_id
    return await asyncio.to_thread(_load, platform, request_id, borrower_id)
