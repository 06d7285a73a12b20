"""Counters the aggregator keeps for ``/metrics`` (prometheus-client's default registry; the API exposes them)."""

from __future__ import annotations

from prometheus_client import Counter

FANOUT_OUTCOMES = Counter(
    "creditmesh_fanout_outcomes",
    "Provider answers in credit-request fan-outs, by provider and outcome (quoted, declined, timeout, error …)",
    ["provider", "outcome"],
)
