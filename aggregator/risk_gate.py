"""The walking skeleton's risk decision: every borrower is grade B with a 70% maximum LTV. The Risk issue replaces
this with the scorecard and policy in ``risk/``."""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils.crypto import keccak

GRADE_LETTERS = {1: "A", 2: "B", 3: "C", 4: "D", 5: "E"}
SPREAD_BPS = {1: 100, 2: 200, 3: 350, 4: 550, 5: 800}


@dataclass(frozen=True, slots=True)
class SkeletonRiskDecision:
    grade: int
    max_ltv_bps: int
    spread_bps: int
    decision_hash: bytes
    model_version: str = "skeleton-fixed-0"


def skeleton_decision(borrower_wallet: str) -> SkeletonRiskDecision:
    return SkeletonRiskDecision(
        grade=2, max_ltv_bps=7_000, spread_bps=SPREAD_BPS[2], decision_hash=keccak(text=f"skeleton:{borrower_wallet}")
    )


def spread_for_grade(grade: int) -> int:
    return SPREAD_BPS.get(grade, SPREAD_BPS[5])
