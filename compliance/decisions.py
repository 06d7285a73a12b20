"""Decision records: every compliance decision with the hash of its inputs (RFC 8785; HMAC-SHA256 under the platform
key when the inputs cover personal data, else keccak256), the rule and list versions that made it, its outcome and
reasons. PII never sits in a record in the clear: what a reviewer may
need is sealed under the subject's key (``pii_sealed``), so erasure shreds it while the hashes still verify."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from compliance import random_ids
from compliance.canonical import canonical_json, inputs_hash, keccak256, keyed_inputs_hash
from compliance.errors import DecisionIntegrityError
from compliance.jurisdiction import Reason
from compliance.sanctions.review import ScreeningOutcome
from compliance.sanctions.screening import NameHit


class Outcome(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    REVIEW = "review"  # a possible sanctions name match: not allowed until a person clears it


class DecisionKind(StrEnum):
    CREDIT_REQUEST = "credit-request"
    ACCEPTANCE = "acceptance"
    COLLATERAL_SOURCE = "collateral-source"
    OFFER = "offer"
    KYC = "kyc"
    SANCTIONS_REVIEW = "sanctions-review"  # a reviewer clears (allow) or confirms (deny) a sanctions name hit


@dataclass(frozen=True)
class DecisionRecord:
    decision_id: str
    kind: DecisionKind
    subject_ref: str  # a pseudonymous id (borrower id, address, quote id), never a name
    outcome: Outcome
    reasons: tuple[Reason, ...]
    versions: Mapping[str, str]  # rule and list versions
    inputs_hash: str  # 0x HMAC-SHA256 (personal inputs, under the platform key) or keccak256 of the canonical inputs
    decided_at: datetime
    pii_sealed: bytes | None = field(default=None, compare=False)
    # The name screen's standing hits with their outcomes, for the review queue; not part of the record's body
    # (the reasons already say which entries and scores), so never hashed or stored here.
    name_hits: tuple[tuple[NameHit, ScreeningOutcome], ...] = field(default=(), compare=False)
    # The identity fingerprint of a name held as not screened in Latin script (``compliance.sanctions.review``), for
    # the review queue likewise; the inputs hash covers the name it is made from.
    unscreened_identity: str | None = field(default=None, compare=False)
    # The identity fingerprint of the name and date of birth screened: the identity the reviews of ``name_hits`` are
    # about (a reviewer's clearance holds for it only), and the one the borrower's screening status reads as screened.
    # Stored beside the record (``compliance_decisions.screened_identity``), never in its hashed body.
    screened_identity: str | None = field(default=None, compare=False)

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW

    def body(self) -> dict[str, Any]:
        return {
            "decisionId": self.decision_id,
            "kind": self.kind.value,
            "subjectRef": self.subject_ref,
            "outcome": self.outcome.value,
            "reasons": [{"code": r.code, "message": r.message, "citation": r.citation} for r in self.reasons],
            "versions": dict(self.versions),
            "inputsHash": self.inputs_hash,
            "decidedAt": self.decided_at,
            "piiHash": None if self.pii_sealed is None else "0x" + keccak256(self.pii_sealed).hex(),
        }

    def record_hash(self) -> str:
        """0x keccak256 of the record's canonical JSON: what an audit log chains. Computed once per record (it is
        frozen): the credit request's write hashes its records before it takes its turn to write."""
        cached: str | None = self.__dict__.get("_record_hash")
        if cached is None:
            cached = "0x" + keccak256(canonical_json(self.body())).hex()
            object.__setattr__(self, "_record_hash", cached)
        return cached

    def verify_inputs(self, inputs: Mapping[str, Any], inputs_key: bytes | None = None) -> None:
        """Raises DecisionIntegrityError unless ``inputs`` are the ones this decision was made on (``inputs_key``: the
        platform key a decision on personal inputs was hashed under)."""
        if "0x" + _hash(inputs, inputs_key).hex() != self.inputs_hash:
            raise DecisionIntegrityError(f"decision {self.decision_id}: the inputs do not match the recorded hash")


def _hash(inputs: Mapping[str, Any], inputs_key: bytes | None) -> bytes:
    return inputs_hash(inputs) if inputs_key is None else keyed_inputs_hash(inputs_key, inputs)


def decide(
    kind: DecisionKind,
    subject_ref: str,
    inputs: Mapping[str, Any],
    reasons: list[Reason],
    versions: Mapping[str, str],
    now: datetime,
    *,
    review_reasons: list[Reason] | None = None,
    pii_sealed: bytes | None = None,
    name_hits: tuple[tuple[NameHit, ScreeningOutcome], ...] = (),
    unscreened_identity: str | None = None,
    screened_identity: str | None = None,
    inputs_key: bytes | None = None,
) -> DecisionRecord:
    """DENY when any reason denies, else REVIEW when a reason needs a person, else ALLOW. Inputs that cover personal
    data are hashed under ``inputs_key`` (HMAC-SHA256); others with keccak256."""
    review_reasons = review_reasons or []
    outcome = Outcome.DENY if reasons else Outcome.REVIEW if review_reasons else Outcome.ALLOW
    return DecisionRecord(
        str(random_ids.uuid4()),  # one os.urandom read per 64 ids: each read releases the GIL
        kind,
        subject_ref,
        outcome,
        (*reasons, *review_reasons),
        dict(versions),
        "0x" + _hash(inputs, inputs_key).hex(),
        now,
        pii_sealed,
        name_hits,
        unscreened_identity,
        screened_identity,
    )


class DecisionRepository(Protocol):
    def add(self, record: DecisionRecord) -> None: ...

    def get(self, decision_id: str) -> DecisionRecord | None: ...

    def for_subject(self, subject_ref: str) -> list[DecisionRecord]: ...

    def screened_identities(self, subject_ref: str, kinds: Collection[DecisionKind]) -> set[str | None]:
        """The identities (``screened_identity``) the decisions of ``kinds`` about ``subject_ref`` screened: empty
        when none was recorded; None for a decision that records none (recorded before they were kept)."""
        ...


class InMemoryDecisionRepository:
    def __init__(self) -> None:
        self.records: dict[str, DecisionRecord] = {}

    def add(self, record: DecisionRecord) -> None:
        self.records[record.decision_id] = record

    def get(self, decision_id: str) -> DecisionRecord | None:
        return self.records.get(decision_id)

    def for_subject(self, subject_ref: str) -> list[DecisionRecord]:
        return [r for r in self.records.values() if r.subject_ref == subject_ref]

    def screened_identities(self, subject_ref: str, kinds: Collection[DecisionKind]) -> set[str | None]:
        return {r.screened_identity for r in self.records.values() if r.subject_ref == subject_ref and r.kind in kinds}
