"""Waiting with a deadline in loops that are stopped by cancellation.

``asyncio.wait_for`` on Python 3.11 can swallow a cancellation that arrives while the awaited event is being set or
its deadline fires (CPython gh-86296, fixed in 3.12 by building ``wait_for`` on ``asyncio.timeout``): the loop that
was cancelled goes on, and whoever awaits its end — a transaction manager's ``close``, a worker's shutdown — waits
for ever. ``asyncio.timeout`` tells its own deadline from a cancellation, so a cancellation always propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable


async def wait_at_most(awaitable: Awaitable[object], seconds: float) -> None:
    """Await ``awaitable`` for at most ``seconds``; a deadline is not an error, a cancellation propagates."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await awaitable
