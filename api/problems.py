"""RFC 9457 problem details: every error leaves the API as ``application/problem+json``, mapped here once."""

from __future__ import annotations

import logging
from typing import Any

from eth_keys.exceptions import BadSignature
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from aggregator.errors import (
    AcceptInProgress,
    AggregatorError,
    AmountOverOwed,
    ChainRejected,
    ComplianceDenied,
    ExposureLimitExceeded,
    ExposureUnvalued,
    FundingFailed,
    HoldNotReleased,
    InvalidAcceptance,
    InvalidCreditRequest,
    InvalidPermit,
    InvalidRepayment,
    LoanNotCancellable,
    LoanNotFound,
    LoanNotRepayable,
    LoanNotUnfunded,
    LoanRecordUnreadable,
    OperatorUnavailable,
    PaymentNotSent,
    PricesUnavailable,
    ProviderRefused,
    QuoteExpired,
    QuoteNotAcceptable,
    QuoteNotFound,
    QuoteSuperseded,
    QuoteWithdrawn,
    RepaymentInProgress,
    RepaymentRejected,
    ReviewAlreadyDecided,
    ReviewNotFound,
)
from api.pagination import InvalidCursor
from api.refusals import Refusal, generic
from chain.errors import ChainError
from compliance import ComplianceError, ComplianceInputError, ErasureRefused, SanctionsListInvalid, SanctionsListStale
from compliance.errors import KycProviderError, PiiError
from risk.errors import RiskError, SubmissionLimitExceeded, VelocityLimitExceeded
from risk.velocity import velocity_reason_code

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://creditmesh.dev/problems/"
#: the title of every ``validation-error``: a body field, a query or path parameter, a header (the detail and
#: ``errors`` name which); one title per problem type, as RFC 9457 has it
INVALID_REQUEST = "The request is invalid"
FASTAPI_BODY_UNPARSED = "There was an error parsing the body"  # fastapi.routing's detail for an undecodable body
#: set in a request's scope when its answer is a refusal that changed nothing (a validation error): the idempotency
#: middleware then releases the request's key instead of keeping the refusal (api.idempotency)
NOTHING_DONE = "creditmesh.nothing-done"
#: what SQLAlchemy raises when the database is down, restarting, dropped the connection or has no connection free;
#: the request's unit of work did not commit, so asking again (a POST with its Idempotency-Key) is safe
DATABASE_UNAVAILABLE: tuple[type[sa_exc.SQLAlchemyError], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)
DATABASE_RETRY_AFTER_SECONDS = 5
#: the identity provider (KYC) did not answer or answered something unusable: nothing was kept, ask again later
IDENTITY_RETRY_AFTER_SECONDS = 30
KEY_STORE_RETRY_AFTER_SECONDS = 30
#: an accept still on its way (its transaction not yet confirmed): ask again, or GET the quote, this much later
ACCEPT_RETRY_AFTER_SECONDS = 5
#: another repayment of the loan under way (another process sending one): post the repayment again this much later
REPAYMENT_RETRY_AFTER_SECONDS = 5
#: a chain step that did not complete (an RPC outage, a dropped transaction): the saga carries on meanwhile
CHAIN_RETRY_AFTER_SECONDS = 5
#: a sanctions list past its age: screening resumes once an operator imports a fresh one (each process reloads it)
SANCTIONS_RETRY_AFTER_SECONDS = 60
#: a part that comes back on its own (the keeper releases a liquidation hold, the price feeds answer again) or once
#: an operator acts (the operator's account configured): the 503s of the platform's own parts say this much
SERVICE_RETRY_AFTER_SECONDS = 30

log = logging.getLogger(__name__)

_STATUS: dict[type[AggregatorError], tuple[int, str, str]] = {
    InvalidCreditRequest: (422, "invalid-credit-request", "The credit request is invalid"),
    QuoteNotFound: (404, "quote-not-found", "Quote not found"),
    LoanNotFound: (404, "loan-not-found", "Loan not found"),
    LoanRecordUnreadable: (503, "loan-record-unreadable", "The loan's record cannot be read"),
    QuoteExpired: (410, "quote-expired", "The quote has expired"),
    QuoteSuperseded: (409, "quote-superseded", "Another quote of this credit request is accepted"),
    QuoteWithdrawn: (409, "quote-withdrawn", "The lender withdrew the offer"),
    QuoteNotAcceptable: (409, "quote-not-acceptable", "The quote cannot be accepted"),
    AcceptInProgress: (409, "accept-in-progress", "The quote is being accepted"),
    ExposureLimitExceeded: (409, "exposure-limit", "The loan would pass the borrower's exposure limit"),
    ExposureUnvalued: (409, "exposure-unvalued", "The borrower's open loans cannot all be valued"),
    InvalidPermit: (422, "invalid-permit", "The collateral permit is invalid"),  # before its parent
    InvalidAcceptance: (422, "invalid-acceptance", "The acceptance signature does not verify"),
    ChainRejected: (422, "chain-rejected", "The chain refused the loan"),
    FundingFailed: (409, "funding-failed", "The lender did not fund the loan"),  # before its parent
    ProviderRefused: (409, "provider-refused", "The lender did not fund the offer"),
    ComplianceDenied: (403, "compliance-denied", "Refused by compliance screening"),
    ReviewNotFound: (404, "sanctions-review-not-found", "Sanctions review not found"),
    ReviewAlreadyDecided: (409, "sanctions-review-decided", "The sanctions review was already decided"),
    LoanNotRepayable: (409, "loan-not-repayable", "The loan takes no repayment here"),
    RepaymentInProgress: (409, "repayment-in-progress", "Another repayment of the loan is under way"),
    LoanNotUnfunded: (409, "loan-not-unfunded", "The loan has no funding to settle"),
    LoanNotCancellable: (409, "loan-not-cancellable", "The chain refused to cancel the loan"),
    OperatorUnavailable: (503, "operator-unavailable", "The operator's account is not configured here"),
    PaymentNotSent: (503, "payment-not-sent", "The payment's record was not sent yet"),
    HoldNotReleased: (503, "hold-not-released", "The loan's liquidation hold is not released yet"),
    AmountOverOwed: (422, "amount-over-owed", "The amount is more than the loan owes"),
    InvalidRepayment: (422, "invalid-repayment", "The repayment is invalid"),
    RepaymentRejected: (422, "repayment-rejected", "The chain refused the repayment"),
    PricesUnavailable: (503, "prices-unavailable", "The collateral cannot be valued now"),
}


def problem(
    status: int, slug: str, title: str, detail: str, instance: str, retry_after: int | None = None, **extra: Any
) -> JSONResponse:
    """The problem+json answer; ``retry_after`` (seconds) as its ``Retry-After`` header: every 503 of a part that
    comes back and every 429 says when to ask again (only ``/readyz``'s 503 does not: a probe asks on its own)."""
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail, "instance": instance}
    response = JSONResponse(body | extra, status_code=status, media_type=PROBLEM_JSON)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


#: the title of a velocity stop about the applicant (R50, R51) and of the per-IP limit's 429
VELOCITY_TITLE, NETWORK_RATE_LIMIT_TITLE = "Too many credit requests", "Too many requests from this network"
VELOCITY_RETRY_AFTER_SECONDS = 60


def _network_rate_limit(request: Request, exc: VelocityLimitExceeded) -> JSONResponse:
    """The per-IP limit's 429: a rate limit of the platform on the client's network address, which many may share —
    not a decision about the applicant, so no adverse-action reason code (its answer said R50, "Too many credit
    applications in a short period", an applicant's reason), no notice and no record
    (``aggregator.quote_refusals``). Same ``velocity-limit`` type, ``rule`` and ``Retry-After`` as before; the
    detail does not name the address."""
    return problem(
        429,
        "velocity-limit",
        NETWORK_RATE_LIMIT_TITLE,
        f"too many credit requests from this network address in the velocity window ({exc.count}, limit "
        f"{exc.limit}): a rate limit of the platform, not a decision about your application; ask again after "
        "Retry-After",
        request.url.path,
        VELOCITY_RETRY_AFTER_SECONDS,
        rule=exc.rule,
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(AggregatorError)
    async def _aggregator(request: Request, exc: AggregatorError) -> JSONResponse:
        status, slug, title = next(
            (v for k, v in _STATUS.items() if isinstance(exc, k)), (400, "bad-request", "Bad request")
        )
        extra: dict[str, Any] = {}
        if isinstance(exc, InvalidCreditRequest):
            extra["errors"] = [{"field": exc.field, "message": exc.message}]
        if isinstance(exc, InvalidAcceptance):
            field = exc.field if isinstance(exc, InvalidPermit) else "signature"
            extra["errors"] = [{"field": field, "message": str(exc)}]
        if isinstance(exc, InvalidRepayment):
            extra["errors"] = [{"field": exc.field, "message": exc.message}]
        if isinstance(exc, FundingFailed):
            extra |= {"quote_id": exc.quote_id, "loan_id": exc.loan_id}
        if isinstance(exc, AmountOverOwed):
            extra["owed_now"] = exc.owed
        if isinstance(exc, ExposureLimitExceeded):
            extra |= {
                "limit": exc.limit,
                "limit_amount": str(exc.ceiling),
                "open_principal": str(exc.owed),
                "open_principal_after": str(exc.after),
            }
        if isinstance(exc, ExposureLimitExceeded | ExposureUnvalued) and exc.request_id is not None:
            extra["request_id"] = exc.request_id  # a credit request refused at quote time, recorded declined
        if isinstance(exc, ComplianceDenied):
            extra["reasons"] = [{"code": code, "message": message} for code, message in exc.reasons]
            if exc.notice is not None:  # a credit request the screening allowed no product of: a credit denial
                extra["adverse_action_notice"] = exc.notice
        # an accept or another repayment in progress is not an outcome: the same request asked again later has one
        retry_after = ACCEPT_RETRY_AFTER_SECONDS if isinstance(exc, AcceptInProgress) else None
        if isinstance(exc, RepaymentInProgress):
            retry_after = REPAYMENT_RETRY_AFTER_SECONDS
        if status == 503:
            retry_after = SERVICE_RETRY_AFTER_SECONDS
        return problem(status, slug, title, str(exc), request.url.path, retry_after, **extra)

    @app.exception_handler(ChainError)
    async def _chain(request: Request, exc: ChainError) -> JSONResponse:
        # A chain step that neither finished nor was refused (an RPC outage; the relayer's transaction dropped
        # twice): the saga's record carries on or ends it, and the accept can be asked again. The message is not
        # shown: it may name an RPC endpoint.
        return problem(
            503,
            "chain-unavailable",
            "The chain step did not complete",
            f"{type(exc).__name__}: the chain did not complete the step; ask again shortly",
            request.url.path,
            CHAIN_RETRY_AFTER_SECONDS,
        )

    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The message is not shown (it names the database host); the log keeps the cause.
        log.warning("database unavailable during %s %s: %s", request.method, request.url.path, exc)
        return problem(
            503,
            "database-unavailable",
            "The database is unavailable",
            "the database did not answer; ask again shortly (a POST with the same Idempotency-Key, so that "
            "nothing it already recorded is done twice)",
            request.url.path,
            DATABASE_RETRY_AFTER_SECONDS,
        )

    for error in DATABASE_UNAVAILABLE:
        app.add_exception_handler(error, _database_unavailable)

    @app.exception_handler(sa_exc.DataError)
    async def _unstorable(request: Request, exc: sa_exc.DataError) -> JSONResponse:
        # A value the database refuses to hold (PostgreSQL: a NUL character in text, a string past its column):
        # the request's input, not an outage; its unit of work rolled back, nothing was kept. The message is not
        # shown (it quotes the statement); the log keeps it.
        log.warning("a value of %s %s cannot be stored: %s", request.method, request.url.path, exc.orig)
        return problem(
            422,
            "unstorable-value",
            "A value cannot be stored",
            "a value of the request cannot be stored (a NUL character, or longer than its field allows)",
            request.url.path,
        )

    @app.exception_handler(KycProviderError)
    async def _identity_unavailable(request: Request, exc: KycProviderError) -> JSONResponse:
        # The message is not shown (it names the provider's URL); the log keeps it. Nothing was kept of the request
        # (BorrowerFiles.verify_identity withdraws the applicant), so asking again is safe.
        log.warning("identity provider unavailable during %s %s: %s", request.method, request.url.path, exc)
        return problem(
            503,
            "identity-unavailable",
            "The identity provider is unavailable",
            "the identity-verification provider did not answer usably; nothing was recorded, ask again shortly "
            "(a POST with the same Idempotency-Key)",
            request.url.path,
            IDENTITY_RETRY_AFTER_SECONDS,
        )

    @app.exception_handler(PiiError)
    async def _key_store_unavailable(request: Request, exc: PiiError) -> JSONResponse:
        # The key store (KMS, or the SQL key store under CREDITMESH_PII_MASTER_KEY) could not hand out a subject's key:
        # unreachable, throttled, or — an operator's error, logged loudly — a master key other than the one the keys
        # were wrapped under. Only what opens or seals an identity meets it; ErasureRefused has its own answer.
        log.error("key store failed during %s %s: %s", request.method, request.url.path, exc)
        return problem(
            503,
            "key-store-unavailable",
            "The personal-data key store is unavailable",
            "the key store holding the borrowers' data keys did not answer usably; nothing was recorded, ask again "
            "shortly",
            request.url.path,
            KEY_STORE_RETRY_AFTER_SECONDS,
        )

    @app.exception_handler(BadSignature)
    async def _bad_signature(request: Request, exc: BadSignature) -> JSONResponse:
        # raised only by ECDSA public-key recovery: a signature of the right length that recovers no key (zeros)
        return problem(
            422,
            "invalid-acceptance",
            "The acceptance signature does not verify",
            f"the signature recovers no signer: {exc}",
            request.url.path,
            errors=[{"field": "signature", "message": "recovers no signer"}],
        )

    @app.exception_handler(SanctionsListStale)
    @app.exception_handler(SanctionsListInvalid)
    async def _stale(request: Request, exc: ComplianceError) -> JSONResponse:
        # Fail closed: no request is screened against a list older than its configured maximum age.
        return problem(
            503,
            "sanctions-list-unavailable",
            "Sanctions screening is unavailable",
            str(exc),
            request.url.path,
            SANCTIONS_RETRY_AFTER_SECONDS,
        )

    @app.exception_handler(ErasureRefused)
    async def _erasure(request: Request, exc: ErasureRefused) -> JSONResponse:
        return problem(
            409,
            "erasure-refused",
            "Erasure is refused during record retention",
            str(exc),
            request.url.path,
            retain_until=None if exc.retain_until is None else exc.retain_until.isoformat(),  # None: a loan open
        )

    @app.exception_handler(ComplianceInputError)
    async def _compliance_input(request: Request, exc: ComplianceInputError) -> JSONResponse:
        return problem(422, "invalid-terms", "The terms are invalid", str(exc), request.url.path)

    @app.exception_handler(VelocityLimitExceeded)
    async def _velocity(request: Request, exc: VelocityLimitExceeded) -> JSONResponse:
        if exc.rule == "ip":
            return _network_rate_limit(request, exc)
        # a stop about the applicant (R50, R51) is a credit denial: its reason code and its notice
        notice = {} if exc.notice is None else {"adverse_action_notice": exc.notice}
        return problem(
            429,
            "velocity-limit",
            VELOCITY_TITLE,
            str(exc),
            request.url.path,
            VELOCITY_RETRY_AFTER_SECONDS,
            rule=exc.rule,
            reason=velocity_reason_code(exc),
            **notice,
        )

    @app.exception_handler(SubmissionLimitExceeded)
    async def _submissions(request: Request, exc: SubmissionLimitExceeded) -> JSONResponse:
        return problem(
            429,
            "kyc-submission-limit",
            "Too many identity verifications",
            str(exc),
            request.url.path,
            exc.retry_after,
            limit=exc.limit,
            window_seconds=exc.window_seconds,
        )

    @app.exception_handler(RiskError)
    async def _risk(request: Request, exc: RiskError) -> JSONResponse:
        return problem(422, "invalid-credit-profile", "The credit profile cannot be scored", str(exc), request.url.path)

    @app.exception_handler(InvalidCursor)
    async def _cursor(request: Request, exc: InvalidCursor) -> JSONResponse:
        return problem(400, "invalid-cursor", "The page cursor is invalid", str(exc), request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"] if p != "body"), "message": err["msg"]}
            for err in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        request.scope[NOTHING_DONE] = True
        return problem(422, "validation-error", INVALID_REQUEST, detail, request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == FASTAPI_BODY_UNPARSED:
            # FastAPI answers 400 for a body it cannot decode (not UTF-8) and 422 for broken JSON: one answer for both
            errors = [{"field": "body", "message": "not JSON in UTF-8"}]
            detail = "body: not JSON in UTF-8"
            request.scope[NOTHING_DONE] = True
            return problem(422, "validation-error", INVALID_REQUEST, detail, request.url.path, errors=errors)
        # a type and a title per condition (RFC 9457): a router's refusal names its own, any other HTTPException (a
        # 401, a webhook's refusal, Starlette's 404 and 405) its status's; the detail says the specifics
        slug, title = (exc.kind.slug, exc.kind.title) if isinstance(exc, Refusal) else generic(exc.status_code)
        response = problem(exc.status_code, slug, title, str(exc.detail), request.url.path)
        if exc.headers:
            response.headers.update(exc.headers)
        if exc.status_code in (429, 503) and "retry-after" not in response.headers:
            response.headers["Retry-After"] = str(SERVICE_RETRY_AFTER_SECONDS)
        return response
