"""Accepting a quote with the borrower's EIP-712 signature."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, status

from aggregator.errors import InvalidAcceptance, QuoteNotFound
from aggregator.permit import CollateralPermit
from api.bootstrap import Platform
from api.deps import CurrentBorrower, PlatformDep, ReaderPrincipal
from api.idempotency import Idempotent
from api.loan_schemas import LoanOut
from api.render import loan_out, quote_out
from api.schemas import EOA_SIGNATURE_LENGTH, AcceptIn, QuoteOut

router = APIRouter(prefix="/v1/quotes", tags=["quotes"])


@router.get("/{quote_id}", response_model=QuoteOut)
async def get_quote(quote_id: str, principal: ReaderPrincipal, platform: PlatformDep) -> QuoteOut:
    found = await asyncio.to_thread(platform.quoting.find_quote, quote_id)
    if found is None or (not principal.sees_everything and found[0].borrower_id != principal.subject_id):
        raise QuoteNotFound(quote_id)
    return quote_out(*found, platform.assets)


@router.post(
    "/{quote_id}/accept", status_code=status.HTTP_201_CREATED, response_model=LoanOut, dependencies=[Idempotent]
)
async def accept_quote(quote_id: str, body: AcceptIn, borrower: CurrentBorrower, platform: PlatformDep) -> LoanOut:
    """Verify the acceptance, lock the quote (superseding the request's other quotes) and relay ``openLoan`` on
    the quote's chain — ``openLoanWithPermit`` when a collateral permit is given; returns the loan. A repeated
    accept of an accepted quote returns the same loan; one still in progress answers 409, and so does one whose
    lender did not fund the loan opened on-chain (``funding-failed``, naming the loan) or withdrew the offer
    (``quote-withdrawn``), or one of a borrower with an open loan in an asset the platform does not list
    (``exposure-unvalued``). The chain reverting the loan answers 422 ``chain-rejected``; the node refusing or dropping
    the relayer's transaction (its funds, its fees) answers 503 ``chain-unavailable``, the quote offered again."""
    if len(body.signature) != EOA_SIGNATURE_LENGTH and not await _from_contract_wallet(platform, borrower.id, quote_id):
        raise InvalidAcceptance(f"signature has {(len(body.signature) - 2) // 2} bytes; a wallet key's has 65")
    permit = None
    if body.permit is not None:
        p = body.permit
        permit = CollateralPermit.parse(p.value, p.deadline, p.v, p.r, p.s)
    accepted = await platform.acceptance.accept(borrower, quote_id, body.signature, permit)
    loan = accepted.loan  # as recorded by this accept; a repeated one's is read
    if loan is None:
        loan = await asyncio.to_thread(platform.acceptance.get_loan, accepted.loan_id, None)
    return loan_out(loan, platform.assets)


async def _from_contract_wallet(platform: Platform, borrower_id: str, quote_id: str) -> bool:
    """Whether the quote's borrower address holds code (an ERC-1271 wallet, whose signature may be longer than 65
    bytes); an unknown quote says yes, so that the accept answers 404 for it."""

    found = await asyncio.to_thread(platform.quoting.find_quote, quote_id)
    if found is None or found[0].borrower_id != borrower_id or found[0].chain_name not in platform.chains:
        return True
    quote = found[0]
    return bool(await platform.chains[quote.chain_name].w3.eth.get_code(quote.offer["borrower"]))
