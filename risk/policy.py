"""Policy: score → grade (A–E, 1..5 on-chain) → PD, max LTV, max amount, risk spread; decline rules; ``assess``.

``assess`` is pure: the caller gathers the profile, the request facts and the on-chain features (or ``None``)
and passes them in; nothing here reads a clock, a database or a chain.

Decline rules, in the order their reasons are listed:

1. more than ``Policy.max_unknown`` characteristics unknown → R20 (incomplete application);
2. a prior default with us, or an open loan below health 1.0 → R30 / R31 (``risk.onchain``);
3. final score below the lowest grade's floor → declined on the score's principal reasons (below);
4. amount above the grade's maximum → R40; amount above ``collateral_value × max LTV`` → R41.

Every decision, approved or not, carries up to four principal reasons (ECOA / Regulation B style): the decline
rules' reasons first (R20, R30, R31, R40, R41), then every factor that held the score back ranked by the points it
cost — the characteristics (against their best bin), the unknown ones together (R20 naming them) and the on-chain
reasons (R33, the health factor's watch band, and R32) alike. "Score below the minimum" (R21) is not a principal
reason (Regulation B, comment 9(b)(2)-1: the notice names the factors that lowered the score, not the score): it is
listed only in the unlikely case that no factor cost a point.

A decline by a rule (1, 2 or 4) carries the rules' reasons alone unless a better grade would have approved the
request (``_score_decided``): the factors are principal reasons only when the score decided the outcome. So a
prior default (R30) or an incomplete application (R20) is declined for that alone, whatever the score; an amount
above the grade's maximum (R40) or its collateral's limit (R41) lists the factors too only when some better grade's
maximum and LTV would carry it (a grade-E borrower asking 3,000 that grade C would lend), not when no grade would
(a grade-A borrower, or an amount above every grade's maximum). A request declined on its score (3) has no rule
reason: its factors are its reasons.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Context, Decimal, localcontext
from typing import Any, Self

import rfc8785
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict

from risk.onchain import OnchainAssessment, OnchainFeatures, combine
from risk.profile import DEFAULT_MAPPING, CreditProfile, CreditRequestFacts, ProfileMapping, characteristics
from risk.reasons import (
    AMOUNT_OVER_LIMIT,
    CHARACTERISTIC_REASONS,
    INSUFFICIENT_COLLATERAL,
    MAX_REASONS,
    SCORE_TOO_LOW,
    Reason,
    unknown_reason,
)
from risk.scorecard import Scorecard, load_scorecard

GRADE_LETTERS = {1: "A", 2: "B", 3: "C", 4: "D", 5: "E"}
#: the collateral's limit to the millionth: a collateral of 2^96 base units of a 6-decimal asset is worth 23 digits
#: before the point, more than the default context's 28 digits hold with 6 after it (``quantize`` raised)
_EXACT = Context(prec=100)
#: the margin under a grade's LTV that the collateral limit keeps for the contract's rounding (see ``assess``)
LTV_ROUNDING_BPS = 1


@dataclass(frozen=True, slots=True)
class GradeTerms:
    grade: int  # 1 = A … 5 = E
    min_score: int
    max_ltv_bps: int
    max_amount: Decimal  # in the request's asset units (a policy is per asset)
    spread_bps: int  # over the pool's model rate


@dataclass(frozen=True, slots=True)
class Policy:
    version: str
    grades: tuple[GradeTerms, ...]  # best grade first, min_score descending
    max_unknown: int = 2

    def grade_for(self, score: int) -> GradeTerms | None:
        return next((terms for terms in self.grades if score >= terms.min_score), None)


# For USD stablecoins (amounts in whole units). PD at each floor, from the scale: A 4.0 %, B 10.6 %, C 22 %,
# D 36 %, E 57 %. On the 1,000 applicants of the data set: A 10 %, B 20 %, C 20 %, D 18 %, E 19 %, declined 14 %.
DEFAULT_POLICY = Policy(
    version="policy-v1",
    grades=(
        GradeTerms(1, 710, 8_000, Decimal(50_000), 150),
        GradeTerms(2, 650, 7_000, Decimal(25_000), 350),
        GradeTerms(3, 600, 6_000, Decimal(10_000), 600),
        GradeTerms(4, 560, 5_000, Decimal(5_000), 900),
        GradeTerms(5, 510, 4_000, Decimal(2_000), 1_300),
    ),
)


class RiskReason(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    text: str


_DECISION_HASH = "decision_hash_kept"
_DOCUMENT = "decision_document_kept"


class RiskDecision(BaseModel):
    """What risk decided about one credit request; ``inputs_hash`` commits to everything it was decided on."""

    model_config = ConfigDict(frozen=True)

    approved: bool
    score: int  # final score: scorecard points plus the on-chain adjustment, clamped to the scale
    scorecard_score: int
    onchain_points: int
    grade: int | None  # 1..5 when approved
    grade_letter: str | None
    pd: Decimal
    max_ltv_bps: int
    max_amount: Decimal
    spread_bps: int
    reasons: tuple[RiskReason, ...]
    unknown: tuple[str, ...]
    model_version: str
    policy_version: str
    inputs_hash: str  # 0x HMAC-SHA256 under the platform key (or keccak256 without one) of the canonical inputs

    def decision_hash(self) -> bytes:
        """keccak256 of this decision's canonical JSON: what an attestation's ``decisionHash`` commits to. Hashed
        once per decision (the credit request's risk summary, its attestations and its stored row all name it) and
        kept in the instance's ``__dict__`` under a name that is not a field, as ``functools.cached_property`` does:
        equality, dumps and validation see only the fields."""
        found: bytes | None = self.__dict__.get(_DECISION_HASH)
        if found is None:
            found = self.__dict__[_DECISION_HASH] = keccak(rfc8785.dumps(self.document()))
        return found

    def document(self) -> dict[str, Any]:
        """``model_dump(mode="json")``, dumped once per decision and kept like the hash (the hash and the stored
        row both use it): shared, so read it, never change it."""
        found: dict[str, Any] | None = self.__dict__.get(_DOCUMENT)
        if found is None:
            found = self.__dict__[_DOCUMENT] = self.model_dump(mode="json")
        return found

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copied = super().model_copy(update=update, deep=deep)
        if update:  # another decision: hashed again when asked
            copied.__dict__.pop(_DECISION_HASH, None)
            copied.__dict__.pop(_DOCUMENT, None)
        return copied


def inputs_hash(
    profile: CreditProfile,
    request: CreditRequestFacts,
    onchain: OnchainFeatures | None,
    model_version: str,
    policy_version: str,
    key: bytes | None = None,
) -> str:
    """The inputs cover the borrower's credit profile (personal data): with the platform's ``key`` the hash is
    HMAC-SHA256, which a dictionary search cannot reverse once the profile is erased; keccak256 without one."""
    document: dict[str, Any] = {
        "profile": profile.model_dump(mode="json"),
        "request": request.model_dump(mode="json"),
        "onchain": None if onchain is None else _onchain_json(onchain),
        "model_version": model_version,
        "policy_version": policy_version,
    }
    canonical = rfc8785.dumps(document)
    if key is not None:
        return "0x" + hmac.new(key, canonical, hashlib.sha256).hexdigest()
    return "0x" + keccak(canonical).hex()


def _onchain_json(features: OnchainFeatures) -> dict[str, object]:
    return {
        "wallet_age_days": features.wallet_age_days,
        "tx_count": features.tx_count,
        "loans_opened": features.loans_opened,
        "loans_repaid": features.loans_repaid,
        "loans_defaulted": features.loans_defaulted,
        "min_health_factor_bps": features.min_health_factor_bps,
        "chain_ids": list(features.chain_ids),
    } | _onchain_flags(features)


def _onchain_flags(features: OnchainFeatures) -> dict[str, object]:
    """The flags that change a decision, named only when set: the inputs hash of a decision without them is as it
    was before they existed."""
    flags: dict[str, object] = {}
    if not features.complete:
        flags["complete"] = False
    if features.contract_wallet:
        flags["contract_wallet"] = True
    return flags


def assess(
    profile: CreditProfile,
    request: CreditRequestFacts,
    onchain: OnchainFeatures | None,
    policy: Policy = DEFAULT_POLICY,
    scorecard: Scorecard | None = None,
    mapping: ProfileMapping = DEFAULT_MAPPING,
    *,
    inputs_key: bytes | None = None,
) -> RiskDecision:
    """Score, grade and decide one credit request (pure; raises ``ProfileError`` on an unmappable request)."""
    card = scorecard or load_scorecard()
    scored = card.score(characteristics(profile, request, mapping))
    onchain_view = combine(onchain)
    scale = card.scale
    score = min(max(scored.score + onchain_view.points, scale.min_score), scale.max_score)
    terms = policy.grade_for(score)

    declines: list[Reason] = []
    if len(scored.unknown) > policy.max_unknown:
        declines.append(unknown_reason(scored.unknown))
    declines.extend(onchain_view.declines)
    if terms is not None:
        limit = terms.max_amount
        if request.amount > terms.max_amount:
            declines.append(AMOUNT_OVER_LIMIT)
        if request.collateral_value is not None:
            by_collateral = collateral_limit(request.collateral_value, terms.max_ltv_bps)
            limit = min(limit, by_collateral)
            if request.amount > by_collateral:
                declines.append(INSUFFICIENT_COLLATERAL)

    factors = _factors(scored.shortfalls, scored.unknown, onchain_view, policy)
    if declines and not _score_decided(declines, terms, request, policy):
        factors = []  # the rules decided: the factors did not
    reasons = _dedupe([*declines, *factors])[:MAX_REASONS]
    if not reasons and terms is None:  # no factor cost a point, and yet the score is below every grade
        reasons = [SCORE_TOO_LOW]
    approved = not declines and terms is not None
    return RiskDecision(
        approved=approved,
        score=score,
        scorecard_score=scored.score,
        onchain_points=onchain_view.points,
        grade=terms.grade if approved and terms else None,
        grade_letter=GRADE_LETTERS[terms.grade] if approved and terms else None,
        pd=scale.pd(score),
        max_ltv_bps=terms.max_ltv_bps if approved and terms else 0,
        max_amount=limit if approved and terms else Decimal(0),
        spread_bps=terms.spread_bps if approved and terms else 0,
        reasons=tuple(RiskReason(code=r.code, text=r.text) for r in reasons),
        unknown=scored.unknown,
        model_version=card.version,
        policy_version=policy.version,
        inputs_hash=inputs_hash(profile, request, onchain, card.version, policy.version, inputs_key),
    )


def _score_decided(
    declines: list[Reason], terms: GradeTerms | None, request: CreditRequestFacts, policy: Policy
) -> bool:
    """Whether a better score would have changed the outcome of a request the rules declined (``declines``): only
    the amount rules (R40, R41) depend on the grade, and only a better grade than ``terms`` (any, below every grade)
    whose maximum and collateral limit carry the amount would have approved it."""
    if any(reason not in (AMOUNT_OVER_LIMIT, INSUFFICIENT_COLLATERAL) for reason in declines):
        return False
    better = [grade for grade in policy.grades if terms is None or grade.grade < terms.grade]
    return any(
        request.amount <= grade.max_amount
        and (
            request.collateral_value is None
            or request.amount <= collateral_limit(request.collateral_value, grade.max_ltv_bps)
        )
        for grade in better
    )


def collateral_limit(collateral_value: Decimal, ltv_bps: int) -> Decimal:
    """The largest amount ``collateral_value`` carries at ``ltv_bps``, to the millionth: a basis point under it.
    On-chain the debt is valued up, the collateral down, and the LTV rounded up to a whole point, so an amount at the
    exact limit can come out one point over the attestation (or the collateral asset's own LTV) and revert at the
    accept, after the borrower signed."""
    with localcontext(_EXACT):
        return (collateral_value * (ltv_bps - LTV_ROUNDING_BPS) / 10_000).quantize(Decimal("0.000001"), ROUND_DOWN)


def _factors(
    shortfalls: tuple[tuple[str, int], ...], unknown: tuple[str, ...], onchain: OnchainAssessment, policy: Policy
) -> list[Reason]:
    """Every reason that held the score back, the one that cost the most points first (ties in the order given: the
    on-chain reasons, then the characteristics by name): the characteristics against their best bin, the unknown ones
    as one reason naming them (when there are few enough to decide on) and the on-chain reasons."""
    lost: list[tuple[Reason, int]] = list(onchain.reasons)
    lost += [
        (CHARACTERISTIC_REASONS[name], points) for name, points in shortfalls if points > 0 and name not in unknown
    ]
    if unknown and len(unknown) <= policy.max_unknown:
        lost.append((unknown_reason(unknown), sum(points for name, points in shortfalls if name in unknown)))
    lost.sort(key=lambda factor: -factor[1])  # stable: ties keep their order
    return [reason for reason, _ in lost]


def _dedupe(reasons: list[Reason]) -> list[Reason]:
    seen: set[str] = set()
    out = []
    for reason in reasons:
        if reason.code not in seen:
            seen.add(reason.code)
            out.append(reason)
    return out
