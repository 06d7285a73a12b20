"""The OpenAPI document as the contract clients are generated from: every operation's error statuses as
``application/problem+json`` with an example, the security schemes, stable operation ids (the handler's name), tags
per audience; ``OPTIONS`` on any path answering with every method it has; Swagger UI and ReDoc served from the
packaged assets of ``fastapi-standalone-docs`` (no CDN: ``/docs`` works offline)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Response
from fastapi.openapi.utils import get_openapi
from fastapi_standalone_docs import StandaloneDocs
from pydantic.json_schema import models_json_schema
from starlette.types import ASGIApp, Receive, Scope, Send

from aggregator.assets import amount_pattern
from api import refusals
from api.idempotency import REPLAYED_HEADER
from api.notice_schemas import AdverseActionNoticeOut
from api.problems import INVALID_REQUEST, PROBLEM_BASE, PROBLEM_JSON, problem
from api.refusals import GENERIC

API_KEY_SCHEME = "ApiKey"
REF_TEMPLATE = "#/components/schemas/{model}"
BEARER_SCHEME = "Bearer"

TAGS: list[dict[str, str]] = [
    {"name": "borrowers", "description": "Audience: borrowers (their account, KYC, credit profile) and admins."},
    {"name": "credit requests", "description": "Audience: borrowers ask for credit; admins and auditors read."},
    {"name": "quotes", "description": "Audience: borrowers accept a quote with their wallet's signature."},
    {
        "name": "loans",
        "description": "Audience: borrowers see their loans, providers the loans they funded; admins and auditors "
        "every loan.",
    },
    {"name": "providers", "description": "Audience: admins register lenders; lenders post signed webhooks."},
    {"name": "sanctions reviews", "description": "Audience: compliance officers (admins) decide held screenings."},
    {"name": "kyc", "description": "Audience: the KYC provider posts signed verdicts."},
    {"name": "platform", "description": "Audience: clients verifying quotes (chains, contracts, signers, assets)."},
    {"name": "api keys", "description": "Audience: admins issue, list, expire and revoke every role's API keys."},
    {
        "name": "reconciliations",
        "description": "Audience: auditors (and admins) reconcile every chain with our records and download reports.",
    },
    {
        "name": "decisions",
        "description": "Audience: auditors (and admins) read every risk and compliance decision, filtered and paged.",
    },
    {"name": "oauth", "description": "Audience: every client: API key client credentials → short-lived tokens."},
    {"name": "health", "description": "Audience: operators and load balancers."},
]

#: each status's example problem when the operation has none of its own: the generic problem api.problems answers
#: for it (api.refusals.GENERIC), and for 422 the validation error every operation with input can answer
_GENERIC = GENERIC | {422: ("validation-error", INVALID_REQUEST)}
_IN_USE = ("idempotency-key-in-use", "The request is already being processed")  # api.idempotency's
_INVALID_CURSOR = ("invalid-cursor", "The page cursor is invalid")  # api.problems'
_DATABASE_DOWN = ("database-unavailable", "The database is unavailable")  # api.problems'
#: the operations a caller without credentials may call that still read or write the database (the webhook's event
#: recorded, the token's API key looked up); every authenticated operation reads it too (its caller's key): each of
#: them can answer 503 ``database-unavailable`` while the database does not answer
_PUBLIC_READING_DATABASE = frozenset({"provider_webhook", "kyc_webhook", "oauth_token"})
#: a 404's problem by the path parameter naming what was not found
_NOT_FOUND = {
    "loan_id": ("loan-not-found", "Loan not found"),
    "quote_id": ("quote-not-found", "Quote not found"),
    "review_id": ("sanctions-review-not-found", "Sanctions review not found"),
} | {
    parameter: (kind.slug, kind.title)
    for parameter, kind in (
        ("request_id", refusals.CREDIT_REQUEST_NOT_FOUND),
        ("run_id", refusals.RECONCILIATION_NOT_FOUND),
        ("provider_id", refusals.PROVIDER_NOT_FOUND),
        ("borrower_id", refusals.BORROWER_NOT_FOUND),
        ("key_id", refusals.API_KEY_NOT_FOUND),
    )
}

# Statuses an operation can return beyond what its shape implies (auth, body, path parameters), by operation id.
_EXTRA: dict[str, tuple[int, ...]] = {
    "register_borrower": (409,),
    "erase_identity": (409, 503),  # 503: the key store did not destroy the key (key-store-unavailable)
    "create_credit_request": (403, 409, 429, 503),  # 409: past the borrower's exposure limit (exposure-limit)
    "accept_quote": (403, 409, 410, 503),
    "repay_loan": (409, 503),
    "settle_funding": (404, 409, 503),
    "clear_review": (409,),
    "confirm_review": (409,),
    "register_provider": (409, 503),
    # 409: a replayed event id, or a payment with nothing to record (or refused by the chain for good); 503: a payment
    # kept whose record the node did not take for now (payment-not-sent), or an offer event about an accept under way
    "provider_webhook": (401, 409, 413, 429, 503),
    "readyz": (503,),
    "kyc_webhook": (401, 413, 422, 429),  # 422: an event that verifies and cannot be applied (kyc-event-unusable)
    "set_api_key_expiry": (409,),
    "issue_api_key": (404,),
    "get_webhook": (404,),  # no webhook URL is set  # the borrower or provider the key would act for is not registered
    "oauth_token": (400, 401, 503),
    # 429: past the borrower's KYC submissions of the day; 503: the KYC provider is down or answered something unusable
    "verify_identity": (429, 503),
    # the borrower's identity is opened (a key-store read) to screen it, or to show it: 503 key-store-unavailable
    # when the key store fails (also on create_credit_request, accept_quote and verify_identity above)
    "me": (503,),  # the sanctions status of a name not screened compares the identity on file
    "get_review": (503,),
    # 503: a chain's confirmed head could not be read (chain-unavailable)
    "start_reconciliation": (503,),
    # 503: the loan's ledger row holds a value that cannot be read back (loan-record-unreadable); also on repay_loan
    # and settle_funding above (_ALSO), every loan route that reads the row
    "get_loan": (503,),
    "loan_events": (503,),
}

# A problem the operation really answers with that status (its type and title), for its example; otherwise the
# status's generic one. api/problems.py and the routers send them.
_EXAMPLES: dict[tuple[str, int], tuple[str, str]] = {
    ("verify_identity", 429): ("kyc-submission-limit", "Too many identity verifications"),
    ("verify_identity", 503): ("identity-unavailable", "The identity provider is unavailable"),
    ("create_credit_request", 403): ("compliance-denied", "Refused by compliance screening"),
    ("create_credit_request", 409): ("exposure-limit", "The loan would pass the borrower's exposure limit"),
    ("create_credit_request", 429): ("velocity-limit", "Too many credit requests"),
    ("create_credit_request", 503): ("sanctions-list-unavailable", "Sanctions screening is unavailable"),
    ("accept_quote", 409): ("quote-superseded", "Another quote of this credit request is accepted"),
    ("accept_quote", 410): ("quote-expired", "The quote has expired"),
    ("accept_quote", 503): ("chain-unavailable", "The chain step did not complete"),
    ("repay_loan", 503): ("chain-unavailable", "The chain step did not complete"),
    ("settle_funding", 409): ("loan-not-unfunded", "The loan has no funding to settle"),
    ("settle_funding", 503): ("operator-unavailable", "The operator's account is not configured here"),
    ("provider_webhook", 503): ("payment-not-sent", "The payment's record was not sent yet"),
    ("readyz", 503): ("not-ready", "Not ready"),
    ("erase_identity", 503): ("key-store-unavailable", "The personal-data key store is unavailable"),
    ("me", 503): ("key-store-unavailable", "The personal-data key store is unavailable"),
    ("get_review", 503): ("key-store-unavailable", "The personal-data key store is unavailable"),
    ("start_reconciliation", 503): ("chain-unavailable", "The chain step did not complete"),
    ("get_loan", 503): ("loan-record-unreadable", "The loan's record cannot be read"),
    ("loan_events", 503): ("loan-record-unreadable", "The loan's record cannot be read"),
} | {
    (operation, kind.status): (kind.slug, kind.title)
    for operation, kind in (
        ("register_borrower", refusals.WALLET_REGISTERED),
        ("register_provider", refusals.PROVIDER_REGISTERED),
        ("register_provider", refusals.PROVIDER_REGISTRY_UNAVAILABLE),
        ("get_webhook", refusals.WEBHOOK_NOT_SET),
        ("kyc_webhook", refusals.KYC_EVENT_UNUSABLE),
        ("issue_api_key", refusals.KEY_SUBJECT_NOT_FOUND),
        ("set_api_key_expiry", refusals.API_KEY_REVOKED),
    )
}

# The problems of an operation that may carry an adverse-action notice (``adverse_action_notice``: a credit request
# denied before it is written, ``aggregator.quote_refusals``): documented as ``CreditRequestRefusal``, a ``Problem``
# with that member; the condition that carries it, named in the answer's description.
_WITH_NOTICE: dict[tuple[str, int], str] = {
    ("create_credit_request", 403): "compliance-denied by the screening carries adverse_action_notice, its reasons "
    "the problem's (not kyc.not-approved: an incomplete application)",
    ("create_credit_request", 429): "velocity-limit with reason R50 or R51 (rule borrower, wallet or "
    "wallet_identities) carries adverse_action_notice; the per-IP limit's (rule ip) does not: titled \"Too many "
    "requests from this network\", a rate limit of the platform on the client's address, not a credit decision, it "
    "carries no reason code (no reason member) and no notice",
}
REFUSAL_SCHEMA: dict[str, Any] = {
    "title": "CreditRequestRefusal",
    "description": "a credit request's problem: a credit denial before the request is written carries the "
    "adverse-action notice 12 CFR 1002.9(a)(2) requires",
    "allOf": [
        {"$ref": REF_TEMPLATE.format(model="Problem")},
        {
            "type": "object",
            "properties": {"adverse_action_notice": {"$ref": REF_TEMPLATE.format(model="AdverseActionNoticeOut")}},
        },
    ],
}

# Other problems an operation answers with a status beside its example's (_EXAMPLES), named in that answer's
# description.
_ALSO: dict[tuple[str, int], str] = {
    ("register_provider", 409): f"{refusals.POOL_ALREADY_SERVED.slug} when another provider that quotes stands for "
    "the pool",
    ("repay_loan", 409): "loan-not-repayable when the loan takes no repayment; or repayment-in-progress, with "
    "Retry-After, while another repayment of the loan is under way",
    ("repay_loan", 503): "loan-record-unreadable when the loan's ledger row cannot be read",
    ("settle_funding", 503): "hold-not-released when the liquidation hold's release is not mined within the wait; "
    "or loan-record-unreadable when the loan's ledger row cannot be read",
}

# Statuses whose answers may say when to ask again (the database or identity provider down, a rate limit), and
# the operations whose answer of that status never does (readiness: a probe asks on its own schedule).
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_NO_RETRY_AFTER = frozenset({("readyz", 503)})
RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "seconds to wait before asking again (sent with every 429 and 503 — the database, a chain, the "
    "identity provider, the key store, a sanctions list, the price feeds — and with the 409 of an Idempotency-Key "
    "whose first request is still running, of an accept in progress or of another repayment of the loan under way)",
    "required": False,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
REPLAYED_HEADER_DOC: dict[str, Any] = {
    "description": "true when this is the stored answer to an earlier request with the same Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "enum": ["true"]},
}

# What a created resource's answer lets a client call next (OpenAPI links: a generated client's or a stateful
# fuzzer's next step), on each of the operation's success answers: operation → link name → (operation it calls, its
# path parameter, where in the answer's body that is).
LINKS: dict[str, dict[str, tuple[str, str, str]]] = {
    "register_borrower": {"EraseIdentity": ("erase_identity", "borrower_id", "/id")},
    "create_credit_request": {
        "GetCreditRequest": ("get_credit_request", "request_id", "/id"),
        "ListQuotes": ("list_quotes_of_request", "request_id", "/id"),
        "GetBestQuote": ("get_quote", "quote_id", "/quotes/0/id"),
        "AcceptBestQuote": ("accept_quote", "quote_id", "/quotes/0/id"),
    },
    "accept_quote": {
        "GetLoan": ("get_loan", "loan_id", "/id"),
        "RepayLoan": ("repay_loan", "loan_id", "/id"),
        "LoanEvents": ("loan_events", "loan_id", "/id"),
        "GetQuote": ("get_quote", "quote_id", "/quote_id"),
    },
    "repay_loan": {"GetLoan": ("get_loan", "loan_id", "/loan_id")},
    "register_provider": {
        "ProviderHealth": ("provider_health", "provider_id", "/provider_id"),
        "SetLoanEventsWebhook": ("set_loan_events_webhook", "provider_id", "/provider_id"),
        "DeregisterProvider": ("deregister_provider", "provider_id", "/provider_id"),
    },
    "issue_api_key": {
        "GetApiKey": ("get_api_key", "key_id", "/id"),
        "SetApiKeyExpiry": ("set_api_key_expiry", "key_id", "/id"),
        "RevokeApiKey": ("revoke_api_key", "key_id", "/id"),
    },
    "start_reconciliation": {
        "GetReconciliation": ("get_reconciliation", "run_id", "/id"),
        "ListDiscrepancies": ("list_discrepancies", "run_id", "/id"),
        "DownloadReport": ("download_report", "run_id", "/id"),
    },
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "the fields that are wrong, for 422",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}


def _problem_response(
    status: int,
    path: str,
    operation_id: str = "",
    idempotent: bool = False,
    paged: bool = False,
    reads_database: bool = False,
) -> dict[str, Any]:
    named = re.findall(r"\{(\w+)\}", path)
    slug, title = (
        _EXAMPLES.get((operation_id, status))
        or (_NOT_FOUND.get(named[-1]) if status == 404 and named else None)
        or (_IN_USE if idempotent and status == 409 else None)
        or (_INVALID_CURSOR if paged and status == 400 else None)
        or (_DATABASE_DOWN if reads_database and status == 503 else None)
        or _GENERIC[status]
    )
    example: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": title,
        "instance": path,
    }
    if slug == _GENERIC[422][0]:  # a validation error names its fields; an operation's own 422 problem does not
        example["errors"] = [{"field": "term_days", "message": "Input should be greater than or equal to 1"}]
    description = title if status == 422 and slug != _GENERIC[422][0] else _GENERIC[status][1]
    if also := _ALSO.get((operation_id, status)):
        description += f" ({slug}; or {also})"
    if status == 503 and reads_database and slug != _DATABASE_DOWN[0]:  # the example shows the operation's own
        description += f" ({slug}; or {_DATABASE_DOWN[0]} while the database does not answer)"
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}, "example": example}},
    }
    retry_after = status in _RETRY_AFTER_STATUSES or (idempotent and status == 409)
    if retry_after and (operation_id, status) not in _NO_RETRY_AFTER:
        response["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
    return response


def _idempotent(operation: dict[str, Any]) -> bool:
    """Whether the operation takes an ``Idempotency-Key`` header (api.idempotency)."""
    parameters = operation.get("parameters", [])
    return any(p.get("in") == "header" and p.get("name") == "Idempotency-Key" for p in parameters)


def _reads_database(operation: dict[str, Any]) -> bool:
    """Whether the operation reads or writes the database, so that it answers 503 ``database-unavailable`` while
    the database does not answer (api.problems): every authenticated one, and the public ones that record."""
    return bool(operation.get("security")) or operation.get("operationId") in _PUBLIC_READING_DATABASE


def _statuses(operation: dict[str, Any]) -> set[int]:
    statuses = set(_EXTRA.get(operation.get("operationId", ""), ()))
    if _reads_database(operation):
        statuses.add(503)
    if "422" in operation["responses"]:  # FastAPI's own, as application/json: replaced by the problem
        statuses.add(422)
    if operation.get("security"):
        statuses |= {401, 403}
    if "requestBody" in operation:
        statuses |= {413, 422}
    parameters = operation.get("parameters", [])
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
    if any(p.get("in") == "query" for p in parameters):
        statuses.add(422)
    if _idempotent(operation):
        statuses |= {409, 422}  # the key is in use by a running request; it was used with another request
    if any(p.get("in") == "query" and p.get("name") == "cursor" for p in parameters):
        statuses.add(400)  # a cursor this API did not issue
    return statuses


def document(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=TAGS,
    )
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for unused in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(unused, None)
    _adverse_action_notice(components["schemas"])
    schemes = components.setdefault("securitySchemes", {})
    schemes[BEARER_SCHEME] = schemes.get(BEARER_SCHEME, {}) | {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            operation_id, idempotent = operation.get("operationId", ""), _idempotent(operation)
            paged = any(p.get("in") == "query" and p.get("name") == "cursor" for p in operation.get("parameters", []))
            for status in _statuses(operation):
                response = _problem_response(status, path, operation_id, idempotent, paged, _reads_database(operation))
                if notice := _WITH_NOTICE.get((operation_id, status)):
                    response["description"] += f"; {notice}"
                    response["content"][PROBLEM_JSON]["schema"] = {
                        "$ref": REF_TEMPLATE.format(model=REFUSAL_SCHEMA["title"])
                    }
                operation["responses"][str(status)] = response
            links = LINKS.get(operation_id, {})
            for status, response in operation["responses"].items():
                if idempotent and status.startswith("2"):
                    response.setdefault("headers", {})[REPLAYED_HEADER] = REPLAYED_HEADER_DOC
                if links and status.startswith("2"):
                    response["links"] = {
                        name: {"operationId": target, "parameters": {parameter: f"$response.body#{pointer}"}}
                        for name, (target, parameter, pointer) in links.items()
                    }
    return schema


def _adverse_action_notice(schemas: dict[str, Any]) -> None:
    """``CreditRequestOut.risk`` is free-form (the answer is written as plain JSON: ``api.render``): its
    ``adverse_action_notice`` is documented by ``AdverseActionNoticeOut`` and the models it holds; so is the one of
    a credit request's problem (``CreditRequestRefusal``)."""
    if "CreditRequestOut" not in schemas:
        return
    _, found = models_json_schema([(AdverseActionNoticeOut, "serialization")], ref_template=REF_TEMPLATE)
    schemas.update(found["$defs"])
    schemas[REFUSAL_SCHEMA["title"]] = REFUSAL_SCHEMA
    risk = schemas["CreditRequestOut"]["properties"]["risk"]
    risk.setdefault("properties", {})["adverse_action_notice"] = {
        "$ref": REF_TEMPLATE.format(model="AdverseActionNoticeOut")
    }


class AllowedMethods:
    """``OPTIONS`` on a path answers 204 with every method the document lists for it (Starlette names only the
    first route's, so ``OPTIONS /v1/providers`` said ``POST`` although ``GET`` exists), and ``HEAD`` with ``GET``
    (``api.head``); 404 problem for no path."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self._app, self._api = app, api
        self._paths: list[tuple[re.Pattern[str], list[str]]] | None = None

    def _allowed(self, path: str) -> list[str] | None:
        if self._paths is None:
            self._paths = [
                (re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))), [m.upper() for m in item])
                for template, item in self._api.openapi().get("paths", {}).items()
            ]
        methods = {method for pattern, listed in self._paths if pattern.fullmatch(path) for method in listed}
        if not methods:
            return None
        return sorted(methods | {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set()))  # api.head

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self._app(scope, receive, send)
            return
        path = scope["path"]
        allowed = self._allowed(path)
        response = (
            Response(status_code=204, headers={"Allow": ", ".join(allowed)})
            if allowed is not None
            else problem(404, "not-found", GENERIC[404][1], f"no resource at {path}", path)
        )
        await response(scope, receive, send)


def _amounts_by_asset(model: dict[str, Any], patterns: dict[str, str]) -> None:
    """``model``'s ``asset`` an enum of ``patterns``' symbols and its ``amount`` held to the asset's own pattern
    (``aggregator.assets.amount_pattern``: its decimals, 2^96-1 base units, > 0): directly for one asset, else one
    ``oneOf`` branch per asset (the base ``amount`` then carries no pattern of its own, which a generator would
    have to intersect with the branch's)."""
    properties = model.get("properties", {})
    if "asset" not in properties or "amount" not in properties:
        return
    properties["asset"]["enum"] = sorted(patterns)
    if len(patterns) == 1:
        properties["amount"]["pattern"] = next(iter(patterns.values()))
        return
    properties["amount"].pop("pattern", None)
    model["oneOf"] = [
        {"properties": {"asset": {"const": symbol}, "amount": {"pattern": pattern}}, "required": ["asset", "amount"]}
        for symbol, pattern in sorted(patterns.items())
    ]


def _platform_limits(schema: dict[str, Any], app: FastAPI) -> None:
    """What only the running platform knows, in the request schemas: the assets it lends and takes as collateral,
    as enums, each with the amounts it takes (a pattern per asset); the chains it runs, as enums (the document read
    without a running platform has none: its amounts carry the common ``AMOUNT_PATTERN``)."""
    platform = getattr(app.state, "platform", None)
    if platform is None:
        return
    chains = sorted(platform.chains)
    patterns = {symbol: amount_pattern(platform.assets.get(symbol).decimals) for symbol in platform.assets.symbols()}
    lendable = getattr(getattr(platform, "quoting", None), "lendable_assets", None) or set(patterns)
    schemas = schema.get("components", {}).get("schemas", {})
    if "CreditRequestIn" in schemas:
        lent = {symbol: pattern for symbol, pattern in patterns.items() if symbol in lendable}
        _amounts_by_asset(schemas["CreditRequestIn"], lent)
    if "CollateralIn" in schemas:
        _amounts_by_asset(schemas["CollateralIn"], patterns)
    preferred = schemas.get("CreditRequestIn", {}).get("properties", {}).get("preferred_chains", {})
    if "items" in preferred:
        preferred["items"]["enum"] = chains
    reconciled = schemas.get("ReconciliationIn", {}).get("properties", {}).get("chains", {})
    for option in reconciled.get("anyOf", []):
        if option.get("type") == "array":
            option["items"]["enum"] = chains


def install(app: FastAPI) -> None:
    StandaloneDocs(app=app)
    app.add_middleware(AllowedMethods, api=app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = document(app)
            _platform_limits(schema, app)
            if getattr(app.state, "platform", None) is None:  # before start-up (a test reading it): not kept
                return schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
