"""Ranking: the lowest total cost of credit first (finance charge for the same amount and term), then the lower
APR, then the more reliable provider, then the provider id so that the order is total and deterministic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class RankedCandidate:
    key: str
    provider_id: str
    finance_charge: int
    apr_percent: Decimal


def rank(candidates: Sequence[RankedCandidate], reliability: Mapping[str, float]) -> list[RankedCandidate]:
    """``candidates`` best first. ``reliability`` is a provider's recent success ratio in [0, 1] (unknown: 1)."""
    return sorted(
        candidates,
        key=lambda c: (c.finance_charge, c.apr_percent, -reliability.get(c.provider_id, 1.0), c.provider_id, c.key),
    )
