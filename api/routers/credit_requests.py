"""Borrowers ask for credit once and get ranked, signed quotes."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from functools import partial

from fastapi import APIRouter, Request, Response, status

from aggregator.quoting import CreditRequestSpec
from api import refusals
from api.auth import Principal
from api.client import client_address
from api.deps import BorrowerExposure, CurrentBorrower, PlatformDep, ReaderPrincipal
from api.idempotency import Idempotent
from api.logs import correlation_id
from api.pagination import (
    DEFAULT_LIMIT,
    CursorParam,
    Limit,
    Page,
    decode_cursor,
    decode_rank_cursor,
    encode_rank_cursor,
    page,
    page_by,
)
from api.render import credit_request_json, credit_request_out, quote_out
from api.schemas import CreditRequestIn, CreditRequestOut, QuoteOut
from store.request_pages import SqlRequestPages

router = APIRouter(prefix="/v1/credit-requests", tags=["credit requests"])
CREDIT_REQUESTS_CURSOR = "credit-requests"  # its cursors name it (another list's is refused)


def _answer(content: bytes, status_code: int = status.HTTP_200_OK) -> Response:
    """A credit request written by ``api.render.credit_request_json``: the bytes FastAPI would write for the route's
    ``response_model`` (which still documents it), without building and validating the models first."""
    return Response(content, status_code, media_type="application/json")


def _load(platform: PlatformDep, request_id: str, borrower_id: str | None) -> Response:
    found = platform.quoting.find_request(request_id)
    if found is None or (borrower_id is not None and found[0].request.borrower_id != borrower_id):
        raise refusals.CREDIT_REQUEST_NOT_FOUND(f"no credit request {request_id}")
    quoted, loan_id = found
    return _answer(credit_request_json(quoted, platform.assets, loan_id))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CreditRequestOut, dependencies=[Idempotent])
async def create_credit_request(
    body: CreditRequestIn,
    borrower: CurrentBorrower,
    exposure: BorrowerExposure,
    platform: PlatformDep,
    request: Request,
) -> Response:
    """Screen (KYC, sanctions, jurisdiction), score, and fan out to every eligible provider within one deadline;
    201 with the ranked, signed quotes, or with ``status: declined`` and the reasons of a risk decline (adverse-action
    notice). A borrower the screening refuses gets 403 ``compliance-denied`` with the reasons instead."""
    keep_profile = None
    if body.credit_profile is not None:  # scored now, kept only with the request (never by a refused one)
        keep_profile = partial(platform.borrowers.save_profile, borrower.id, body.credit_profile)
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
    quoted = await platform.quoting.request_credit(
        borrower, spec, client_ip, correlation_id.get(), keep_profile, exposure
    )
    # as written: a new request has no loan
    return _answer(credit_request_json(quoted, platform.assets), status.HTTP_201_CREATED)


@router.get("/{request_id}", response_model=CreditRequestOut)
async def get_credit_request(request_id: str, principal: ReaderPrincipal, platform: PlatformDep) -> Response:
    borrower_id = None if principal.sees_everything else principal.subject_id
    return await asyncio.to_thread(_load, platform, request_id, borrower_id)


def _owner(principal: Principal) -> str | None:
    """Borrowers see their own requests and quotes; admins and auditors every one."""
    return None if principal.sees_everything else str(principal.subject_id)


@router.get("", response_model=Page[CreditRequestOut])
async def list_credit_requests(
    request: Request,
    principal: ReaderPrincipal,
    platform: PlatformDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[CreditRequestOut]:
    """The caller's credit requests (a borrower's own; every one for admins and auditors), newest first, a page at a
    time, each with its quotes and provider outcomes."""
    after = decode_cursor(CREDIT_REQUESTS_CURSOR, cursor)

    pages = SqlRequestPages(platform.database)
    rows = await asyncio.to_thread(pages.requests, _owner(principal), after, limit + 1)
    return page(
        request,
        CREDIT_REQUESTS_CURSOR,
        rows,
        limit,
        lambda row: (row[0].request.created_at, row[0].request.id),
        lambda row: credit_request_out(row[0], platform.assets, row[1]),
    )


@router.get("/{request_id}/quotes", response_model=Page[QuoteOut])
async def list_quotes_of_request(
    request_id: str,
    request: Request,
    principal: ReaderPrincipal,
    platform: PlatformDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[QuoteOut]:
    """The quotes of one credit request in rank order (best first, as the request lists them), a page at a time."""
    after = decode_rank_cursor(cursor)

    pages = SqlRequestPages(platform.database)
    found = await asyncio.to_thread(pages.quotes, request_id, _owner(principal), after, limit + 1)
    if found is None:
        raise refusals.CREDIT_REQUEST_NOT_FOUND(f"no credit request {request_id}")
    owner, quotes = found
    return page_by(
        request,
        quotes,
        limit,
        lambda q: encode_rank_cursor(q.rank, q.id),
        lambda q: quote_out(q, owner, platform.assets),
    )
