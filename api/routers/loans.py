"""Loans: the ledger's record, which follows the chain (``aggregator.ledger``), with live figures from the chain; a
borrower's relayed repayment of a pool loan (``aggregator.repaying``); an admin's settlement of a loan its lender
never funded (``aggregator.funding_settlement``)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from aggregator.errors import InvalidAcceptance, InvalidRepayment
from aggregator.funding_settlement import FundingSettlements
from aggregator.loans import LoanFlag, LoanScope, LoanService
from aggregator.permit import CollateralPermit
from aggregator.receipts import LedgerReceipts
from aggregator.repaying import RepaymentService, SignedRepayment
from api.auth import Principal, Role, actor_of
from api.deps import AdminPrincipal, CurrentBorrowerAccount, PlatformDep, require
from api.idempotency import Idempotent
from api.loan_schemas import FundingSettlementIn, FundingSettlementOut, LoanOut, RepaymentIn, RepaymentResultOut
from api.pagination import DEFAULT_LIMIT, CursorParam, Limit, Page, decode_cursor, page
from api.render import loan_detail_out, loan_out, repayment_out
from store.funding_settlements import SqlFundingSettlementStore
from store.leases import SqlLeaseStore
from store.loans import SqlLoanStore

router = APIRouter(prefix="/v1/loans", tags=["loans"])
LOANS_CURSOR = "loans"  # its cursors name it (another list's is refused)

LoanReader = Annotated[Principal, require(Role.BORROWER, Role.PROVIDER, Role.ADMIN, Role.AUDITOR)]


async def get_loans(platform: PlatformDep) -> LoanService:
    return LoanService(SqlLoanStore(platform.database), platform.chains)


LoansDep = Annotated[LoanService, Depends(get_loans)]


async def get_repayments(platform: PlatformDep) -> RepaymentService:
    return RepaymentService(
        SqlLoanStore(platform.database),
        platform.chains,
        platform.assets,
        LedgerReceipts(platform.database),
        wait_seconds=platform.settings.accept_wait_seconds,
        leases=SqlLeaseStore(platform.database.sessions),  # a loan's repayments one at a time across processes
    )


RepaymentsDep = Annotated[RepaymentService, Depends(get_repayments)]


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
    flag: Annotated[
        LoanFlag | None,
        Query(
            description="only loans with this flag (e.g. unfunded: the lender never funded it; funding_pending: the "
            "lender has not confirmed funding it yet)"
        ),
    ] = None,
) -> Page[LoanOut]:
    """The caller's loans, newest first, a page at a time (`next` is the following page's URL, null at the end),
    each open one with its days past due by its chain's clock now (none for an unfunded one, or one whose funding is
    pending)."""
    after = decode_cursor(LOANS_CURSOR, cursor)
    rows = await asyncio.to_thread(loans.page, _scope(principal), after, limit + 1, flag)
    past_due = await loans.delinquencies(rows[:limit])  # by each chain's clock, one batch per chain
    return page(
        request,
        LOANS_CURSOR,
        rows,
        limit,
        lambda row: (row.created_at, row.id),
        lambda row: loan_out(row, platform.assets, past_due.get(row.id)),
    )


@router.get("/{loan_id}", response_model=LoanOut)
async def get_loan(loan_id: str, principal: LoanReader, platform: PlatformDep, loans: LoansDep) -> LoanOut:
    """The loan's record as the chain made it — status, outstanding principal, interest and principal paid,
    collateral, funder, every repayment, collateral movement and liquidation with its block and transaction — and,
    while it is active or in default, live figures read from the chain now (amount owed, health factor)."""
    detail = await loans.detail(loan_id, _scope(principal))
    return loan_detail_out(detail, platform.assets)


@router.post(
    "/{loan_id}/repayments",
    status_code=status.HTTP_201_CREATED,
    response_model=RepaymentResultOut,
    responses={202: {"model": RepaymentResultOut, "description": "sent, not mined within the wait: GET the loan"}},
    dependencies=[Idempotent],
)
async def repay_loan(
    loan_id: str,
    body: RepaymentIn,
    borrower: CurrentBorrowerAccount,
    platform: PlatformDep,
    loans: LoansDep,
    repayments: RepaymentsDep,
    response: Response,
) -> RepaymentResultOut:
    """Relay the borrower's signed repayment of a pool loan (``repayWithPermit``: the borrower pays no gas) and
    record it from its receipt's ``LoanRepaid``; answers the split (interest first), whether it closed the loan and
    the loan after it with the amount owed now. The same signed repayment posted again is the same transaction
    (its intent is keyed by the calldata; the contract uses each repayment nonce once). Refusals as problems:
    ``amount-over-owed`` (with ``owed_now``), ``loan-not-repayable`` (not active or in default, funded off-chain,
    closed by a repayment taken before it: one loan's repayments are taken one at a time),
    ``repayment-in-progress`` (409 with ``Retry-After``: another repayment of the loan is under way, in another of
    the platform's processes or answered 202 and not yet confirmed; nothing of this one was sent: post it again),
    ``invalid-repayment`` (a signature or permit that does not verify, no allowance, a repayment or permit whose
    deadline the chain's time has passed), ``repayment-rejected`` (the chain's simulation reverted, or the relayer's
    transaction was dropped: sign a new repayment)."""
    # Without an Idempotency-Key too, the calldata-keyed intent makes a repeated post of one signed repayment one
    # transaction.
    try:
        permit = (
            None
            if body.permit is None
            else CollateralPermit.parse(
                body.permit.value, body.permit.deadline, body.permit.v, body.permit.r, body.permit.s
            )
        )
    except InvalidAcceptance as err:
        field, _, message = str(err).partition(": ")
        raise InvalidRepayment(field, message) from None
    signed = SignedRepayment(body.amount, int(body.nonce), body.deadline, bytes.fromhex(body.signature[2:]), permit)
    outcome = await repayments.repay(borrower.account.id, loan_id, signed)
    if outcome.status != "confirmed":
        response.status_code = status.HTTP_202_ACCEPTED
    detail = await loans.detail(loan_id, LoanScope(borrower_id=borrower.account.id))
    return repayment_out(outcome, loan_detail_out(detail, platform.assets), platform.assets)


@router.post(
    "/{loan_id}/funding-settlement",
    response_model=FundingSettlementOut,
    responses={202: {"model": FundingSettlementOut, "description": "the cancel was sent, not mined within the wait"}},
    dependencies=[Idempotent],
)
async def settle_funding(
    loan_id: str,
    body: FundingSettlementIn,
    principal: AdminPrincipal,
    platform: PlatformDep,
    loans: LoansDep,
    response: Response,
) -> FundingSettlementOut:
    """An admin's settlement of an **unfunded** loan (flag ``unfunded``: its lender refused, or reported failed, the
    funding, and did not confirm it unfunded, so the default job left it), once settled with the lender.
    ``funded: true`` — the lender did pay the borrower out: the loan is serviced from now on. ``funded: false`` —
    the operator's account sends ``cancelUnfunded`` now, without asking the lender: the loan is ``cancelled`` and its
    collateral released to the borrower (202 when not mined within the wait: the default job resumes it). Each is
    an audit entry (``funding-settlement``) with the admin's key and note. Refusals as problems:
    ``loan-not-unfunded`` (not an open unfunded loan, or a cancel of it already sent), ``loan-not-cancellable``
    (the contract refuses: something was repaid on it, or it is in default), ``operator-unavailable``,
    ``hold-not-released`` (settled funded; the liquidation hold's release not mined within the wait: post again)."""
    settlements = FundingSettlements(
        SqlFundingSettlementStore(platform.database),
        platform.chains,
        platform.database,
        wait_seconds=platform.settings.accept_wait_seconds,
    )
    settled = await settlements.settle(loan_id, body.funded, actor_of(principal), body.note)
    if not settled.confirmed:
        response.status_code = status.HTTP_202_ACCEPTED
    detail = await loans.detail(loan_id, LoanScope())
    return FundingSettlementOut(
        outcome=settled.outcome,
        transaction_hash=settled.tx_hash,
        confirmed=settled.confirmed,
        loan=loan_detail_out(detail, platform.assets),
    )
