"""Loans and their on-chain record."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from api.deps import PlatformDep, ReaderPrincipal
from api.render import loan_out
from api.schemas import LoanOut

router = APIRouter(prefix="/v1/loans", tags=["loans"])


@router.get("/{loan_id}", response_model=LoanOut)
async def get_loan(loan_id: str, principal: ReaderPrincipal, platform: PlatformDep) -> LoanOut:
    """Chain, contract, transaction hash, block and status of a loan (borrowers see only their own)."""
    borrower_id = None if principal.sees_everything else principal.subject_id
    loan = await asyncio.to_thread(platform.acceptance.get_loan, loan_id, borrower_id)
    return loan_out(loan, platform.assets)
