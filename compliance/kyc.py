"""KYC: tiers by amount and product, document rules, a provider interface shaped like Sumsub or Jumio (applicant,
documents, status, signed webhooks), a local provider that applies the rules, and webhook verification.

Webhook signature (the same shape as the common providers'): header ``X-Creditmesh-Signature: t=<unix seconds>,
v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>``; the JSON body carries a unique ``eventId``. A delivery is refused
when the signature does not verify, its timestamp is outside the tolerance, or its event id was already seen.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Any, Protocol

from compliance.errors import KycProviderError, WebhookRejected
from compliance.jurisdiction import Product, Reason
from compliance.sanctions.names import spelling_key


class KycTier(IntEnum):
    NONE = 0
    BASIC = 1  # identity document verified
    STANDARD = 2  # plus proof of address and liveness
    ENHANCED = 3  # plus source of funds (enhanced due diligence)


class KycState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class DocumentType(StrEnum):
    PASSPORT = "passport"
    ID_CARD = "id-card"
    DRIVING_LICENCE = "driving-licence"
    RESIDENCE_PERMIT = "residence-permit"


ACCEPTED_DOCUMENTS = frozenset(DocumentType)


@dataclass(frozen=True)
class TierLimits:
    """The largest amount (USD-pegged asset units) each tier may borrow, per product."""

    limits: Mapping[Product, tuple[tuple[KycTier, Decimal], ...]]

    def required_tier(self, amount: Decimal, product: Product) -> KycTier:
        for tier, ceiling in self.limits[product]:
            if amount <= ceiling:
                return tier
        return KycTier.ENHANCED


DEFAULT_TIER_LIMITS = TierLimits(
    {
        Product.TRADITIONAL: ((KycTier.BASIC, Decimal("1000")), (KycTier.STANDARD, Decimal("25000"))),
        # DeFi loans are over-collateralized, but the wallet is pseudonymous: the same tiers, a little more room.
        Product.DEFI: ((KycTier.BASIC, Decimal("2500")), (KycTier.STANDARD, Decimal("50000"))),
    }
)


@dataclass(frozen=True)
class IdentityProfile:
    first_name: str
    last_name: str
    date_of_birth: date
    country: str  # ISO 3166 code of residence, "US-NY" style for US states


@dataclass(frozen=True)
class IdentityDocument:
    document_type: str
    number: str
    first_name: str
    last_name: str
    date_of_birth: date
    issuing_country: str
    expires_on: date
    proves_address: bool = False
    liveness_passed: bool = False
    source_of_funds: bool = False


@dataclass(frozen=True)
class KycStatus:
    applicant_id: str
    subject_id: str
    state: KycState
    tier: KycTier
    reasons: tuple[Reason, ...]
    updated_at: datetime


def _age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def check_document(
    profile: IdentityProfile, document: IdentityDocument, today: date, age_of_majority: int
) -> list[Reason]:
    """The rules the local provider applies; every failed rule is a reason (empty: the document passes)."""
    reasons = []
    if document.document_type not in {d.value for d in ACCEPTED_DOCUMENTS}:
        reasons.append(Reason("kyc.document-type", f"{document.document_type!r} is not an accepted identity document"))
    if document.expires_on <= today:
        reasons.append(Reason("kyc.document-expired", f"the document expired on {document.expires_on.isoformat()}"))
    if not document.number.strip():
        reasons.append(Reason("kyc.document-number", "the document has no number"))
    same_name = spelling_key(f"{profile.first_name} {profile.last_name}") == spelling_key(
        f"{document.first_name} {document.last_name}"
    )
    if not same_name:
        reasons.append(Reason("kyc.name-mismatch", "the name on the document differs from the profile"))
    if document.date_of_birth != profile.date_of_birth:
        reasons.append(Reason("kyc.dob-mismatch", "the date of birth on the document differs from the profile"))
    if _age_on(document.date_of_birth, today) < age_of_majority:
        reasons.append(Reason("kyc.under-age", f"the applicant is under the age of majority ({age_of_majority})"))
    return reasons


def tier_of(document: IdentityDocument) -> KycTier:
    if not (document.proves_address and document.liveness_passed):
        return KycTier.BASIC
    return KycTier.ENHANCED if document.source_of_funds else KycTier.STANDARD


def tier_sufficient(status: KycStatus | None, amount: Decimal, product: Product, limits: TierLimits) -> list[Reason]:
    required = limits.required_tier(amount, product)
    if status is None or status.state is not KycState.APPROVED:
        return [Reason("kyc.not-approved", f"KYC is not approved; {required.name} is required for this amount")]
    if status.tier < required:
        return [
            Reason("kyc.tier-too-low", f"KYC tier {status.tier.name} is below the {required.name} this amount needs")
        ]
    return []


class KycProvider(Protocol):
    """Shaped like Sumsub's or Jumio's API: an applicant, documents submitted to it, a status, webhooks."""

    def create_applicant(self, subject_id: str, profile: IdentityProfile, now: datetime) -> KycStatus: ...

    def submit_document(self, applicant_id: str, document: IdentityDocument, now: datetime) -> KycStatus: ...

    def status(self, applicant_id: str) -> KycStatus: ...


class LocalKycProvider:
    """A KYC provider for local runs and tests that applies ``check_document`` and reports through signed webhooks
    (``outbox`` holds the deliveries it would have sent)."""

    def __init__(self, webhook_secret: bytes, age_of_majority: Mapping[str, int] | None = None) -> None:
        self._secret = webhook_secret
        self._ages = dict(age_of_majority or {})
        self._applicants: dict[str, tuple[IdentityProfile, KycStatus]] = {}
        self.outbox: list[tuple[bytes, dict[str, str]]] = []

    def create_applicant(self, subject_id: str, profile: IdentityProfile, now: datetime) -> KycStatus:
        applicant_id = f"local-{uuid.uuid4()}"
        status = KycStatus(applicant_id, subject_id, KycState.PENDING, KycTier.NONE, (), now)
        self._applicants[applicant_id] = (profile, status)
        return status

    def submit_document(self, applicant_id: str, document: IdentityDocument, now: datetime) -> KycStatus:
        if applicant_id not in self._applicants:
            raise KycProviderError(f"unknown applicant {applicant_id}")
        profile, status = self._applicants[applicant_id]
        age = self._ages.get(profile.country.upper(), 18)
        reasons = check_document(profile, document, now.date(), age)
        if reasons:
            status = replace(status, state=KycState.REJECTED, tier=KycTier.NONE, reasons=tuple(reasons), updated_at=now)
        else:
            status = replace(status, state=KycState.APPROVED, tier=tier_of(document), reasons=(), updated_at=now)
        self._applicants[applicant_id] = (profile, status)
        body = json.dumps(
            {
                "eventId": str(uuid.uuid4()),
                "type": "applicantReviewed",
                "applicantId": applicant_id,
                "state": status.state.value,
                "tier": int(status.tier),
                "reasons": [r.code for r in status.reasons],
            },
            sort_keys=True,
        ).encode()
        self.outbox.append((body, sign_webhook(body, self._secret, now)))
        return status

    def status(self, applicant_id: str) -> KycStatus:
        if applicant_id not in self._applicants:
            raise KycProviderError(f"unknown applicant {applicant_id}")
        return self._applicants[applicant_id][1]


SIGNATURE_HEADER = "X-Creditmesh-Signature"


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign_webhook(body: bytes, secret: bytes, now: datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    return {SIGNATURE_HEADER: f"t={timestamp},v1={_mac(secret, timestamp, body)}"}


class ReplayGuard(Protocol):
    def remember(self, event_id: str, received_at: datetime) -> bool:
        """Record ``event_id``; False when it was already recorded (a replay)."""
        ...


class InMemoryReplayGuard:
    def __init__(self) -> None:
        self._seen: set[str] = set()

    def remember(self, event_id: str, received_at: datetime) -> bool:
        if event_id in self._seen:
            return False
        self._seen.add(event_id)
        return True


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    secret: bytes,
    now: datetime,
    replays: ReplayGuard,
    tolerance: timedelta = timedelta(minutes=5),
) -> dict[str, Any]:
    """The webhook's JSON payload, once its signature, freshness and uniqueness are established.

    Raises:
        WebhookRejected: missing or bad signature, a timestamp outside ``tolerance``, no event id, or a replay.
    """
    header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), None)
    if header is None:
        raise WebhookRejected("no signature header")
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (ValueError, KeyError) as err:
        raise WebhookRejected("malformed signature header") from err
    # bytes, not str: compare_digest raises TypeError on a non-ASCII str (a 500 instead of a refusal)
    if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), _mac(secret, timestamp, body).encode()):
        raise WebhookRejected("signature does not verify")
    if abs(now.timestamp() - timestamp) > tolerance.total_seconds():
        raise WebhookRejected("timestamp outside the allowed window")
    try:
        payload: dict[str, Any] = json.loads(body)
        event_id = str(payload["eventId"])
    except (ValueError, KeyError, TypeError) as err:
        raise WebhookRejected("payload has no eventId") from err
    if not replays.remember(event_id, now):
        raise WebhookRejected(f"event {event_id} was already delivered")
    return payload
