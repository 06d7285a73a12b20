"""The risk spread a pool adds over its model rate for a borrower's grade, from risk's policy: the quoting
pipeline's own (``QuotingConfig.policy``, which graded the borrower), so a pool never prices a grade on terms the
decision was not made on."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from risk.policy import DEFAULT_POLICY, Policy


def spread_for_grade(grade: int, policy: Policy = DEFAULT_POLICY) -> int:
    """Basis points over the pool's model rate; the worst grade's spread for an unknown grade."""
    return next((terms.spread_bps for terms in policy.grades if terms.grade == grade), policy.grades[-1].spread_bps)


def spreads_of(policy: Policy) -> Callable[[int], int]:
    """``spread_for_grade`` on ``policy``: what the pools are given (``providers.base.AdapterContext``), the policy
    the credit requests are graded on."""
    return partial(spread_for_grade, policy=policy)
