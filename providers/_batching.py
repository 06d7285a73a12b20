"""Redis commands of one event-loop turn sent as one: ``TurnBatch``.

A request's fan-out starts its lender calls together (one task each, created in one loop turn), so their first
steps run in the same turn and each reaches the rate limiter's script at once; their answers, arriving while the
process is busy, are read in the same turn too, and each settles its success. Sent one by one, every call is a
Redis round trip of its own (~0.2 ms of redis-py's CPU each here, and a socket write and read); gathered, the calls
of a turn share one script over all their keys. The first call of a turn schedules the send, which runs on the next
turn, after every call already ready in this one has joined; each call still waits for its own result, so a
caller sees what it saw before, one round trip later at most. A call alone in its turn is sent alone, as before.

A batch may also wait ``delay`` seconds after its first item before it is sent, for items whose callers do not wait
for the answer (``post``: a lender call's recorded success, ``providers._breaker``): what arrives meanwhile — the
other answers of a request, the answers of other requests — goes in the same send. ``drain`` sends what waits at
once and waits for every send so far (what must reach Redis before a later command of this process does)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - one item of a batch
R = TypeVar("R")


class TurnBatch(Generic[I, R]):
    """Items submitted during one event-loop turn, sent together by ``send`` (one result per item, in order)."""

    def __init__(self, send: Callable[[Sequence[I]], Awaitable[Sequence[R]]], delay: float = 0.0) -> None:
        self._send = send
        self._delay = delay
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        #: how many sends and items so far (for measurement and tests)
        self.sends = 0
        self.items = 0

    async def submit(self, item: I) -> R:
        return await self.post(item)

    def post(self, item: I) -> asyncio.Future[R]:
        """Add ``item`` to the next send; its result (or the send's error) in the future returned."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if not self._pending:
            if self._delay > 0:
                self._timer = loop.call_later(self._delay, self._start)
            else:
                self._start()
        self._pending.append((item, future))
        return future

    def _start(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(
            self._flush()
        )  # its first step runs after this turn's ready callbacks
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def drain(self) -> None:
        """Send what waits now, and wait until every send so far has been answered (or failed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._start()
        if self._sending:
            await asyncio.wait(list(self._sending))

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        self.sends += 1
        self.items += len(batch)
        try:
            results = await self._send([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} answered with {len(results)} results")
        except BaseException as err:  # every caller sees the error (a cancelled send as its cancellation)
            for _, future in batch:
                if not future.done():
                    future.set_exception(asyncio.CancelledError() if isinstance(err, asyncio.CancelledError) else err)
            if not isinstance(err, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # a caller cancelled meanwhile: its item was sent, its result is dropped
                future.set_result(result)
