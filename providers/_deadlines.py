"""The caller's deadline for every provider call started inside it (tasks created inside included), retries
included."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("creditmesh_provider_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[float]:
    """Every provider call started inside (including in tasks created inside) ends within ``seconds`` from now,
    retries included. Yields the absolute ``time.monotonic()`` deadline."""
    at = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(at if outer is None else min(outer, at))
    try:
        yield at
    finally:
        _deadline.reset(token)


def current_deadline() -> float | None:
    return _deadline.get()
