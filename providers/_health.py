"""This process's health view of one provider: latency percentiles, error rate, recent failures."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Failure:
    at: float
    operation: str
    reason: str

    def as_document(self) -> dict[str, str]:
        return {
            "at": datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds"),
            "operation": self.operation,
            "reason": self.reason,
        }


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class HealthTracker:
    """This process's view of one provider's calls over the last ``window`` calls."""

    window: int = 200
    clock: Callable[[], float] = time.time
    calls: deque[tuple[float, bool]] = field(init=False)
    failures: deque[Failure] = field(default_factory=lambda: deque(maxlen=20))
    total_calls: int = 0
    total_failures: int = 0
    rejected: int = 0
    #: calls the caller stopped waiting for (cancelled, or ended by its deadline before the provider's own limit)
    cut_short: int = 0
    #: the calls of the window that succeeded, kept as calls come and go (``success_ratio`` walks nothing)
    window_successes: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.calls = deque(maxlen=self.window)

    def observe(self, latency_ms: float, ok: bool) -> None:
        if self.calls and len(self.calls) == self.calls.maxlen and self.calls[0][1]:
            self.window_successes -= 1  # the oldest call leaves the window
        self.calls.append((latency_ms, ok))
        self.window_successes += 1 if ok and self.calls else 0
        self.total_calls += 1
        self.total_failures += 0 if ok else 1

    def success_ratio(self) -> float | None:
        """The share of the window's calls that succeeded, in [0, 1]; None before the first call. What ranking
        breaks ties on (``aggregator.ranking``); O(1), safe to ask from the event loop on every request."""
        return self.window_successes / len(self.calls) if self.calls else None

    def fail(self, operation: str, reason: str) -> None:
        self.failures.append(Failure(self.clock(), operation, reason[:300]))

    def summary(self) -> dict[str, Any]:
        latencies = [latency for latency, _ in self.calls]
        errors = sum(1 for _, ok in self.calls if not ok)

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        return {
            "window_calls": len(self.calls),
            "error_rate": round(errors / len(self.calls), 4) if self.calls else 0.0,
            "latency_ms": {
                "p50": ms(percentile(latencies, 0.50)),
                "p95": ms(percentile(latencies, 0.95)),
                "p99": ms(percentile(latencies, 0.99)),
            },
            "total_calls": self.total_calls,
            "total_failures": self.total_failures,
            "rejected_calls": self.rejected,
            "cut_short_calls": self.cut_short,
            "recent_failures": [failure.as_document() for failure in self.failures],
        }
