"""The three outcomes of a name screen and the review of a possible match. Pure: hits and past reviews in, outcome out.

* **clear**: no listed name reaches the threshold, or every entry that does was cleared by a reviewer for this
  borrower's identity as screened now (``identity_fingerprint``: name and date of birth) and for the same version of
  the entry (``entry_fingerprint``);
* **possible match**: a hit at or above the threshold: the borrower is held until an admin reviews it;
* **match**: a near-exact full name, an entry a reviewer confirmed for this borrower (or a listed wallet address,
  screened apart): blocked.

A clearance holds until OFAC changes the entry or the borrower changes identity: a new list version with the entry
unchanged keeps it; a changed entry (its names, type, program or identifying remarks) opens a new review, and so does
another name or date of birth on file (the borrower verified again): a reviewer who cleared "Mazen Hussein, born 1985"
has not cleared "Mazen Ali Hussein, born 1982", so a near-exact hit on the new identity is a match again. A
confirmation holds for the borrower whatever identity they verify with later (fail closed). Reviews stored before
clearances were tied to an identity (no ``identity``) clear nothing: such a hit is held for review again.

A name the screen cannot spell in Latin letters (``unspelled_letters``) is held for a person too, with no SDN entry
to review: its review is of the borrower's identity as screened (``identity_fingerprint``: the name and date of birth,
keyed under the platform key). A verdict on it holds for that identity only; another name or date of birth (the
borrower verified again) is screened — and, still unspelled, held — afresh.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from compliance.canonical import canonical_json
from compliance.errors import ComplianceInputError
from compliance.sanctions.screening import NameHit


class ScreeningOutcome(StrEnum):
    CLEAR = "clear"
    POSSIBLE_MATCH = "possible-match"
    MATCH = "match"


class ReviewKind(StrEnum):
    SDN_ENTRY = "sdn-entry"  # a name hit on one version of one SDN entry
    NAME_NOT_SCREENED = "name-not-screened"  # a name the screen could not spell in Latin letters, for one identity


NOT_SCREENED_OUTCOME = "not-screened"  # a name-not-screened review's outcome: held, as a possible match is


class ReviewState(StrEnum):
    PENDING = "pending"
    CLEARED = "cleared"  # a reviewer found the borrower is not the listed party
    CONFIRMED = "confirmed"  # a reviewer found the borrower is (or may be) the listed party: blocked


@dataclass(frozen=True)
class PriorReview:
    """What a reviewer decided about one borrower's identity (``identity``: its ``identity_fingerprint``) and one
    version of one SDN entry — or, with no ``ent_num``, about the borrower's identity whose name could not be screened
    (``entry_fingerprint`` is then its ``identity_fingerprint`` too)."""

    ent_num: int | None
    entry_fingerprint: str
    state: ReviewState
    identity: str | None = None  # None: a review stored before reviews were tied to an identity (clears nothing)


def identity_fingerprint(key: bytes, borrower_id: str, full_name: str, date_of_birth: date | None) -> str:
    """HMAC-SHA256 (hex) under the platform key of the identity a review is about (of an SDN entry hit, or of a name
    not screened): the borrower, the name exactly as screened and the date of birth. Stored in the clear in the review
    queue, it names no one; a new name or date of birth makes another fingerprint, so a verdict never carries over to
    another identity."""
    body = {"borrowerId": borrower_id, "fullName": full_name, "dateOfBirth": date_of_birth}
    return hmac.new(key, b"creditmesh.name-not-screened/1\n" + canonical_json(body), hashlib.sha256).hexdigest()


def identity_verdict(fingerprint: str, prior: Iterable[PriorReview]) -> ReviewState | None:
    """The reviewer's verdict on the identity with this fingerprint (None: none given yet)."""
    return next((p.state for p in prior if p.ent_num is None and p.entry_fingerprint == fingerprint), None)


@dataclass(frozen=True)
class NameScreening:
    outcome: ScreeningOutcome
    hits: tuple[tuple[NameHit, ScreeningOutcome], ...]  # the hits still standing, each with its own outcome
    cleared: tuple[NameHit, ...]  # hits on entries a reviewer cleared for this identity (not held again)


def hit_outcome(hit: NameHit, prior: Iterable[PriorReview], identity: str | None) -> ScreeningOutcome:
    """A hit's outcome given the borrower's verdicts on its entry version: confirmed (for any identity of the
    borrower) is a match; cleared for ``identity``, the identity screened now, is clear; else a near-exact name is a
    match and any other hit a possible match. A clearance of another identity (or of none) clears nothing."""
    verdicts = [p for p in prior if p.ent_num == hit.ent_num and p.entry_fingerprint == hit.entry_fingerprint]
    if any(p.state is ReviewState.CONFIRMED for p in verdicts):
        return ScreeningOutcome.MATCH
    if identity is not None and any(p.state is ReviewState.CLEARED and p.identity == identity for p in verdicts):
        return ScreeningOutcome.CLEAR
    return ScreeningOutcome.MATCH if hit.near_exact else ScreeningOutcome.POSSIBLE_MATCH


def classify(hits: Sequence[NameHit], prior: Iterable[PriorReview] = (), identity: str | None = None) -> NameScreening:
    """The outcome of a name screen of the identity ``identity`` (its ``identity_fingerprint``) given the borrower's
    past reviews (the worst outcome of any hit)."""
    by_entry = [p for p in prior if p.ent_num is not None]
    standing: list[tuple[NameHit, ScreeningOutcome]] = []
    cleared: list[NameHit] = []
    for hit in hits:
        outcome = hit_outcome(hit, by_entry, identity)
        if outcome is ScreeningOutcome.CLEAR:
            cleared.append(hit)
        else:
            standing.append((hit, outcome))
    outcomes = {outcome for _, outcome in standing}
    worst = (
        ScreeningOutcome.MATCH
        if ScreeningOutcome.MATCH in outcomes
        else ScreeningOutcome.POSSIBLE_MATCH
        if standing
        else ScreeningOutcome.CLEAR
    )
    return NameScreening(worst, tuple(standing), tuple(cleared))


@dataclass(frozen=True)
class ReviewVerdict:
    """A reviewer's decision on one review."""

    review_id: str
    state: ReviewState
    reviewer: str  # the admin's principal id
    note: str
    decided_at: datetime

    def __post_init__(self) -> None:
        if self.state is ReviewState.PENDING:
            raise ComplianceInputError("a verdict clears or confirms; it cannot leave the review pending")
        if not self.note.strip():
            raise ComplianceInputError("a verdict needs a note saying why (what was compared: date of birth, ...)")
        if len(self.note) > 2000:
            raise ComplianceInputError("the note is longer than 2,000 characters")
