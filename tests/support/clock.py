"""A clock a test moves by hand."""

from __future__ import annotations


class ManualClock:
    """Seconds, as ``time.monotonic`` gives them, that move only when the test sets ``now``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now
