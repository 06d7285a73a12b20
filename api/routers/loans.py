"""Loans: the ledger's record, which follows the chain (``aggregator.ledger``), with live figures from the chain."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from aggregator.loans import LoanService
from api.auth import Principal, Role
from api.deps import PlatformDep, require
from api.pagination import DEFAULT_LIMIT, CursorParam, Limit, Page, decode_cursor, page
from api.render import loan_detail_out, loan_out
from api.schemas import LoanOut
from store.ledger import LoanScope

router = APIRouter(prefix="/v1/loans", tags=["loans"])

LoanReader = Annotated[Principal, require(Role.BORROWER, Role.PROVIDER, Role.ADMIN, Role.AUDITOR)]


def get_loans(platform: PlatformDep) -> LoanService:
    return LoanService(platform.database, platform.chains)


LoansDep = Annotated[LoanService, Depends(get_loans)]


def _scope(principal: Principal) -> LoanScope:
    """Borrowers see their own loans, providers the loans they funded, admins and auditors every loan."""
    if principal.sees_everything:
        return LoanScope()
    if principal.role is Role.PROVIDER:
        return LoanScope(provider_id=str(principal.subject_id))
    return LoanScope(borrower_id=str(principal.subject_id))


@router.get("", response_model=Page[LoanOut])
async def list_loans(
    request: Request,
    principal: LoanReader,
    platform: PlatformDep,
    loans: LoansDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[LoanOut]:
    """The caller's loans, newest first, a page at a time (`next` is the following page's URL, null at the end)."""
    after = decode_cursor(cursor)
    rows = await asyncio.to_thread(loans.page, _scope(principal), after, limit + 1)
    return page(request, rows, limit, lambda row: (row.created_at, row.id), lambda row: loan_out(row, platform.assets))


@router.get("/{loan_id}", response_model=LoanOut)
async def get_loan(loan_id: str, principal: LoanReader, platform: PlatformDep, loans: LoansDep) -> LoanOut:
    """The loan's record as the chain made it — status, outstanding principal, interest and principal paid,
    collateral, funder, every repayment, collateral movement and liquidation with its block and transaction — and,
    while it is active or in default, live figures read from the chain now (amount owed, health factor)."""
    detail = await loans.detail(loan_id, _scope(principal))
    return loan_detail_out(detail, platform.assets)
