"""KYC: tiers by amount and product, document rules, the provider interface (shaped like Sumsub's, Onfido's or
Veriff's: applicant → verification session → signed webhook with the verdict), the simulated provider's rules, an
in-process fake, and webhook verification. The tier is only ever what a provider's signed review says: nothing the
borrower submits sets it (``compliance.kyc_http`` is the real adapter, ``compliance.sim`` the simulator).

Webhook signature (the same shape as the common providers'): header ``X-Creditmesh-Signature: t=<unix seconds>,
v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>``; the JSON body carries a unique ``eventId``. A delivery is refused
when the signature does not verify, its timestamp is outside the tolerance, or its event id was already seen. The
adapter signs its own API requests the same way, so the provider can authenticate the platform.

A verdict carries the time the provider reached it, ``reviewedAt`` (RFC 3339 with its zone; the signature's ``t`` is
the delivery's, renewed at every retry): a verdict reached before the one stored for its applicant is a late
redelivery, taken (answered 2xx, so the provider stops retrying) and ignored. One without ``reviewedAt`` counts as
reached when it is received (the last delivered wins, as before the field).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
import uuid
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Any, Protocol

from compliance.eligibility import age_on
from compliance.errors import KycProviderError, UnusableKycEvent, WebhookRejected
from compliance.jurisdiction import Product, Reason
from compliance.sanctions.names import spelling_key, unspelled_letters
from compliance.sanctions.spelling import drop_invisible


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


@dataclass(frozen=True)
class KycStatus:
    applicant_id: str
    subject_id: str
    state: KycState
    tier: KycTier
    reasons: tuple[Reason, ...]
    updated_at: datetime
    reviewed_at: datetime | None = None  # when the provider reviewed it (its verdict's reviewedAt, else received)


def same_name(a: str, b: str) -> bool:
    """Whether two names are written alike: on their spelling keys (accents, case and punctuation aside) when every
    letter of both is spelt, else on their Unicode text, NFKC and case-folded (the keys of "Иван Петров" and "Рамзан
    Кадыров" are both empty). Invisible format characters (a soft hyphen, a zero-width space) are not part of either."""
    if not unspelled_letters(a) and not unspelled_letters(b):
        return spelling_key(a) == spelling_key(b)
    return _unicode_words(a) == _unicode_words(b)


def _unicode_words(name: str) -> list[str]:
    return unicodedata.normalize("NFKC", drop_invisible(name)).casefold().split()


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
    if not same_name(f"{profile.first_name} {profile.last_name}", f"{document.first_name} {document.last_name}"):
        reasons.append(Reason("kyc.name-mismatch", "the name on the document differs from the profile"))
    if document.date_of_birth != profile.date_of_birth:
        reasons.append(Reason("kyc.dob-mismatch", "the date of birth on the document differs from the profile"))
    if age_on(document.date_of_birth, today) < age_of_majority:
        reasons.append(Reason("kyc.under-age", f"the applicant is under the age of majority ({age_of_majority})"))
    return reasons


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
    """An identity-verification service in the shape of Sumsub's, Onfido's or Veriff's APIs: an applicant per
    subject, a verification session for a document, and the result delivered later as a signed webhook (read it with
    ``verify_webhook`` and ``review_of``). Neither call decides a tier: both answer PENDING.

    Raises:
        KycProviderError: the provider failed or answered something unusable.
    """

    async def create_applicant(self, subject_id: str, profile: IdentityProfile, now: datetime) -> KycStatus: ...

    async def submit_document(self, applicant_id: str, document: IdentityDocument, now: datetime) -> KycStatus: ...


@dataclass(frozen=True)
class KycReview:
    """A provider's verdict on one applicant, as its signed webhook states it."""

    event_id: str
    applicant_id: str
    subject_id: str
    state: KycState
    tier: KycTier
    reasons: tuple[Reason, ...]
    reviewed_at: datetime | None = None  # the payload's reviewedAt: when the provider reached this verdict

    def status(self, now: datetime) -> KycStatus:
        """The applicant's status once this verdict is applied at ``now`` (reviewed then, when it says no time)."""
        reviewed = now if self.reviewed_at is None else self.reviewed_at
        return KycStatus(self.applicant_id, self.subject_id, self.state, self.tier, self.reasons, now, reviewed)

    def older_than(self, stored: KycStatus) -> bool:
        """Whether this verdict was reached before the one ``stored`` for its applicant: a late redelivery (a
        provider retries for a while) that must not overwrite a later re-review. A verdict without a review time
        counts as reached when received, so it is never older: the last delivered wins, as it always did."""
        return self.reviewed_at is not None and stored.reviewed_at is not None and self.reviewed_at < stored.reviewed_at

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "eventId": self.event_id,
            "type": "applicantReviewed",
            "applicantId": self.applicant_id,
            "externalUserId": self.subject_id,
            "state": self.state.value,
            "tier": int(self.tier),
            "reasons": [{"code": r.code, "message": r.message} for r in self.reasons],
        }
        if self.reviewed_at is not None:
            body["reviewedAt"] = self.reviewed_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return body


def _review_time(payload: Mapping[str, Any], now: datetime, tolerance: timedelta) -> datetime | None:
    """The payload's ``reviewedAt`` (RFC 3339 with its zone), None when it has none.

    Raises:
        UnusableKycEvent: not such a moment, or later than ``now`` by more than ``tolerance`` (a verdict dated ahead
            would outrank every later one).
    """
    raw = payload.get("reviewedAt")
    if raw is None:
        return None
    try:
        reviewed = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        reviewed = None
    if reviewed is None or reviewed.tzinfo is None or reviewed.utcoffset() is None:
        raise UnusableKycEvent("reviewedAt is not an RFC 3339 date-time with its zone")
    if reviewed - now > tolerance:
        raise UnusableKycEvent("reviewedAt is in the future")
    return reviewed.astimezone(UTC)


def review_of(
    payload: Mapping[str, Any], now: datetime | None = None, tolerance: timedelta = timedelta(minutes=5)
) -> KycReview:
    """The review a verified webhook payload carries, received at ``now`` (its ``reviewedAt`` checked against it).

    Raises:
        UnusableKycEvent: the payload is not an ``applicantReviewed`` event of the expected shape, or its
            ``reviewedAt`` is not a moment with a zone or lies ahead of ``now`` by more than ``tolerance``.
    """
    reviewed = _review_time(payload, datetime.now(UTC) if now is None else now, tolerance)
    try:
        if payload["type"] != "applicantReviewed":
            raise UnusableKycEvent(f"unexpected event type {payload['type']!r}")
        state = KycState(payload["state"])
        tier = KycTier(int(payload["tier"]))
        reasons = tuple(Reason(str(r["code"]), str(r["message"])) for r in payload.get("reasons", ()))
        review = KycReview(
            str(payload["eventId"]),
            str(payload["applicantId"]),
            str(payload["externalUserId"]),
            state,
            tier,
            reasons,
            reviewed,
        )
    except (KeyError, ValueError, TypeError) as err:
        raise UnusableKycEvent("the payload is not an applicant review") from err
    if state is not KycState.APPROVED and tier is not KycTier.NONE:
        raise UnusableKycEvent("a tier without an approval")
    return review


# The simulated provider's deterministic outcomes for test identities: a valid document is verified at STANDARD
# (document, proof of address and liveness, as a real provider's session checks them); a document number starting
# with one of these letters is verified at that tier instead.
SIMULATED_TIER_BY_PREFIX = {"B": KycTier.BASIC, "E": KycTier.ENHANCED}


def simulated_review(
    event_id: str,
    subject_id: str,
    applicant_id: str,
    profile: IdentityProfile,
    document: IdentityDocument,
    today: date,
    age_of_majority: int,
    reviewed_at: datetime | None = None,
) -> KycReview:
    """What the simulated provider (and the in-process fake) decides: ``check_document``'s rules, then the tier by
    ``SIMULATED_TIER_BY_PREFIX``; ``reviewed_at`` is the verdict's review time."""
    reasons = check_document(profile, document, today, age_of_majority)
    if reasons:
        return KycReview(
            event_id, applicant_id, subject_id, KycState.REJECTED, KycTier.NONE, tuple(reasons), reviewed_at
        )
    tier = SIMULATED_TIER_BY_PREFIX.get(document.number.strip()[:1].upper(), KycTier.STANDARD)
    return KycReview(event_id, applicant_id, subject_id, KycState.APPROVED, tier, (), reviewed_at)


class LocalKycProvider:
    """The in-process fake of ``KycProvider`` for unit tests: ``simulated_review`` decides, and the signed webhook it
    would send goes to ``outbox`` (bounded, like its applicants: the oldest are forgotten)."""

    def __init__(
        self, webhook_secret: bytes, age_of_majority: Mapping[str, int] | None = None, max_applicants: int = 1_000
    ) -> None:
        self._secret = webhook_secret
        self._ages = dict(age_of_majority or {})
        self._max = max_applicants
        self._applicants: OrderedDict[str, tuple[str, IdentityProfile]] = OrderedDict()
        self.outbox: deque[tuple[bytes, dict[str, str]]] = deque(maxlen=max_applicants)

    async def create_applicant(self, subject_id: str, profile: IdentityProfile, now: datetime) -> KycStatus:
        applicant_id = f"local-{uuid.uuid4()}"
        self._applicants[applicant_id] = (subject_id, profile)
        while len(self._applicants) > self._max:
            self._applicants.popitem(last=False)
        return KycStatus(applicant_id, subject_id, KycState.PENDING, KycTier.NONE, (), now)

    async def submit_document(self, applicant_id: str, document: IdentityDocument, now: datetime) -> KycStatus:
        if applicant_id not in self._applicants:
            raise KycProviderError(f"unknown applicant {applicant_id}")
        subject_id, profile = self._applicants[applicant_id]
        age = self._ages.get(profile.country.upper(), 18)
        review = simulated_review(
            str(uuid.uuid4()), subject_id, applicant_id, profile, document, now.date(), age, reviewed_at=now
        )
        body = json.dumps(review.payload(), sort_keys=True).encode()
        self.outbox.append((body, sign_webhook(body, self._secret, now)))
        return KycStatus(applicant_id, subject_id, KycState.PENDING, KycTier.NONE, (), now)


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
    """For tests and single-process tools: remembers the newest ``capacity`` event ids (the time window bounds how old a
    replay can be; production uses ``store.compliance.SqlReplayGuard``)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def remember(self, event_id: str, received_at: datetime) -> bool:
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return True


def verify_signature(
    body: bytes,
    headers: Mapping[str, str],
    secret: bytes,
    now: datetime,
    tolerance: timedelta = timedelta(minutes=5),
) -> None:
    """Raises WebhookRejected unless ``body`` carries a valid, fresh ``X-Creditmesh-Signature`` under ``secret``.
    The compare is byte-wise and constant-time (a non-ASCII header is refused, never an error)."""
    header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), None)
    if header is None:
        raise WebhookRejected("no signature header")
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        stamp, given = parts["t"], parts["v1"]
    except (ValueError, KeyError) as err:
        raise WebhookRejected("malformed signature header") from err
    # plain ASCII digits only, as the lenders' (providers.signing): int() would also take " +1_700", "١٧٠٠"
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        raise WebhookRejected("malformed signature header: the timestamp is not plain digits")
    timestamp = int(stamp)
    # bytes, not str: compare_digest raises TypeError on a non-ASCII str (a 500 instead of a refusal)
    if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), _mac(secret, timestamp, body).encode()):
        raise WebhookRejected("signature does not verify")
    if abs(now.timestamp() - timestamp) > tolerance.total_seconds():
        raise WebhookRejected("timestamp outside the allowed window")


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
    verify_signature(body, headers, secret, now, tolerance)
    try:
        payload: dict[str, Any] = json.loads(body)
        event_id = str(payload["eventId"])
    except (ValueError, KeyError, TypeError, RecursionError) as err:  # RecursionError: arrays nested thousands deep
        raise WebhookRejected("payload has no eventId") from err
    if not replays.remember(event_id, now):
        raise WebhookRejected(f"event {event_id} was already delivered")
    return payload
