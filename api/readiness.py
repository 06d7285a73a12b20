"""``/readyz``'s shared answer. The probe is public (the Kubernetes readiness probe carries no key) and reads the
database, Redis and every chain's head block: answered afresh for every caller, a flood of unauthenticated calls
became as many calls to every chain's RPC (against a rate-limited plan, the 429s then opened the breakers borrowers'
quotes go through) and a Redis write each. ``SharedProbe`` runs the probe once for every caller at a time (single
flight: callers arriving while it runs wait for that run) and answers from its result for ``max_age`` seconds after
the run started, so a process asks each part at most about once per ``max_age`` however many calls come."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: the default of ``CREDITMESH_READINESS_CACHE_SECONDS``: far below a readiness probe's period (Kubernetes: 10 s)
READINESS_CACHE_SECONDS = 2.0


class SharedProbe(Generic[T]):
    """One run of a probe shared by every caller while it runs, and its result reused for ``max_age`` seconds from
    the run's start (by ``clock``; 0: a result is never reused, though simultaneous callers still share a run). The
    run is shielded from its callers: a client that disconnects cancels its own wait, not the others' probe. A
    failing run is not kept (each of its waiters sees its error; the next caller runs the probe again)."""

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._result: tuple[float, T] | None = None  # (when its run started, the result)
        self._run: asyncio.Task[T] | None = None

    async def result(self, probe: Callable[[], Awaitable[T]]) -> T:
        if self._result is not None and self._clock() - self._result[0] < self.max_age:
            return self._result[1]
        loop = asyncio.get_running_loop()
        if self._run is None or self._run.done() or self._run.get_loop() is not loop:
            self._run = loop.create_task(self._probed(probe, self._clock()))
            self._run.add_done_callback(_retrieved)
        return await asyncio.shield(self._run)

    async def _probed(self, probe: Callable[[], Awaitable[T]], started: float) -> T:
        result = await probe()
        self._result = (started, result)
        return result


def _retrieved(run: asyncio.Task[object]) -> None:
    """A run whose every caller stopped waiting is not reported as an error never retrieved."""
    if not run.cancelled():
        run.exception()
