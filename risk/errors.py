"""The one exception root of ``risk/``; the API edge maps it to problem+json once."""

from __future__ import annotations

from typing import Any


class RiskError(Exception):
    """Anything ``risk/`` refuses to do."""


class ArtifactError(RiskError):
    """The scorecard artifact is missing, malformed, or not the version asked for."""


class ProfileError(RiskError):
    """A credit profile or request cannot be mapped to the model's characteristics."""


class VelocityLimitExceeded(RiskError):
    """A velocity or fraud rule stops the request; ``rule`` names it, ``reason`` is the adverse-action code.
    ``notice``: the adverse-action notice its answer carries, once the credit request's caller has given it (a stop
    about the applicant: ``aggregator.quote_refusals``); None for the per-IP limit."""

    def __init__(self, rule: str, key: str, count: int, limit: int) -> None:
        super().__init__(f"velocity rule {rule!r} exceeded for {key}: {count} > {limit}")
        self.rule = rule
        self.key = key
        self.count = count
        self.limit = limit
        self.notice: dict[str, Any] | None = None


class SubmissionLimitExceeded(RiskError):
    """A borrower submitted ``what`` more often than ``limit`` times in ``window_seconds``; ``retry_after``: the
    seconds until one of the counted submissions leaves the window (at most the window)."""

    def __init__(self, what: str, key: str, limit: int, window_seconds: int, retry_after: int) -> None:
        super().__init__(f"at most {limit} {what} in {window_seconds} s for {key}; try again in {retry_after} s")
        self.what = what
        self.key = key
        self.limit = limit
        self.window_seconds = window_seconds
        self.retry_after = retry_after
