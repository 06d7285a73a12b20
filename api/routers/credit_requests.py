"""Borrowers ask for credit once and get ranked, signed quotes."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from fastapi import APIRouter, HTTPException, Request, status

from aggregator.quoting import CreditRequestSpec
from api.client import client_address
from api.deps import CurrentBorrower, PlatformDep, ReaderPrincipal
from api.idempotency import Idempotent
from api.logs import correlation_id
from api.render import credit_request_out
from api.schemas import CreditRequestIn, CreditRequestOut

router = APIRouter(prefix="/v1/credit-requests", tags=["credit requests"])


def _load(platform: PlatformDep, request_id: str, borrower_id: str | None) -> CreditRequestOut:
    found = platform.quoting.find_request(request_id)
    if found is None or (borrower_id is not None and found[0].request.borrower_id != borrower_id):
        raise HTTPException(404, f"no credit request {request_id}")
    quoted, loan_id = found
    return credit_request_out(quoted, platform.assets, loan_id)


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
    quoted = await platform.quoting.request_credit(borrower, spec, client_ip, correlation_id.get())
    return credit_request_out(quoted, platform.assets)  # as written: a new request has no loan


@router.get("/{request_id}", response_model=CreditRequestOut)
async def get_credit_request(request_id: str, principal: ReaderPrincipal, platform: PlatformDep) -> CreditRequestOut:
    borrower_id = None if principal.sees_everything else principal.subject_id
    return await asyncio.to_thread(_load, platform, request_id, borrower_id)
