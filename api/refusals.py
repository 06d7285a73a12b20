"""The routers' own refusals, each a problem type of RFC 9457: a fixed ``type`` and a constant ``title`` per condition,
the ``detail`` saying the specifics (which loan, which chain, why the URL is refused). A router raises
``LOAN_EVENTS_NOT_FOUND("no loan …")``-style calls of these; ``api.problems`` answers them. An ``HTTPException``
raised without one (the auth dependencies' 401 and 403, a webhook's refusal) is answered with its status's generic
type and title (``GENERIC``), never with its detail as the title."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus

from fastapi import HTTPException


@dataclass(frozen=True, slots=True)
class ProblemType:
    status: int
    slug: str
    title: str

    def __call__(self, detail: str, headers: Mapping[str, str] | None = None) -> Refusal:
        """The refusal to raise, ``detail`` naming what is wrong."""
        return Refusal(self, detail, headers)


class Refusal(HTTPException):
    """An ``HTTPException`` of a fixed problem type."""

    def __init__(self, kind: ProblemType, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(kind.status, detail, dict(headers) if headers else None)
        self.kind = kind


#: each status's generic problem (an HTTPException of no type of its own, the document's examples)
GENERIC: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    410: ("gone", "Gone"),
    413: ("body-too-large", "Request body too large"),  # api.body_limit's
    429: ("too-many-requests", "Too many requests"),
    503: ("service-unavailable", "Service unavailable"),
}


def generic(status: int) -> tuple[str, str]:
    """``status``'s generic problem type (slug) and title."""
    if status in GENERIC:
        return GENERIC[status]
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return "http-error", phrase


PROVIDER_REGISTRY_UNAVAILABLE = ProblemType(
    503, "provider-registry-unavailable", "The provider registry is unavailable"
)
PROVIDER_REGISTERED = ProblemType(409, "provider-already-registered", "The provider is already registered")
POOL_ALREADY_SERVED = ProblemType(409, "pool-already-served", "The pool is already served by another provider")
INVALID_REGISTRATION = ProblemType(422, "invalid-registration", "The provider registration is invalid")
PROVIDER_NOT_FOUND = ProblemType(404, "provider-not-found", "Provider not found")
WALLET_REGISTERED = ProblemType(409, "wallet-already-registered", "The wallet is already a borrower's")
BORROWER_NOT_FOUND = ProblemType(404, "borrower-not-found", "Borrower not found")
WEBHOOK_URL_REFUSED = ProblemType(422, "webhook-url-refused", "The webhook URL is refused")
WEBHOOK_NOT_SET = ProblemType(404, "webhook-not-set", "No webhook URL is set")
KYC_EVENT_UNUSABLE = ProblemType(422, "kyc-event-unusable", "The KYC event cannot be applied")
CREDIT_REQUEST_NOT_FOUND = ProblemType(404, "credit-request-not-found", "Credit request not found")
RECONCILIATION_NOT_FOUND = ProblemType(404, "reconciliation-not-found", "Reconciliation not found")
UNKNOWN_CHAIN = ProblemType(422, "unknown-chain", "The chain is not served here")
FROM_BLOCK_PAST_HEAD = ProblemType(422, "from-block-past-head", "The from_block is past a chain's confirmed head")
API_KEY_NOT_FOUND = ProblemType(404, "api-key-not-found", "API key not found")
KEY_SUBJECT_NOT_FOUND = ProblemType(404, "key-subject-not-found", "The key's borrower or provider is not registered")
API_KEY_REVOKED = ProblemType(409, "api-key-revoked", "The API key is revoked")
INVALID_KEY_REQUEST = ProblemType(422, "invalid-key-request", "The API key request is invalid")
