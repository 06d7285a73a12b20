"""The risk spread a pool adds over its model rate for a borrower's grade, from risk's policy."""

from __future__ import annotations

from risk.policy import DEFAULT_POLICY, Policy


def spread_for_grade(grade: int, policy: Policy = DEFAULT_POLICY) -> int:
    """Basis points over the pool's model rate; the worst grade's spread for an unknown grade."""
    return next((terms.spread_bps for terms in policy.grades if terms.grade == grade), policy.grades[-1].spread_bps)
