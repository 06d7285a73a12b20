"""Broadcasting signed attempts: the ones ready at one moment go out as one JSON-RPC batch request.

Hundreds of concurrent submits sign and persist their attempts in a few grouped commits, so they reach the
broadcast together; one HTTP POST of a batch of ``eth_sendRawTransaction`` s costs the event loop far less than one
exchange each (an aiohttp request, a task, a timeout and a decoded answer per transaction). One batch is in flight at
a time; the attempts that arrive meanwhile form the next (as ``store.chain_batches.run_batched`` groups commits), at
most ``MAX_BATCH`` to a request. Each caller gets its own element of the answer — the same answer a single send
gets, read the same way by the caller ("already known", "nonce too low", underpriced replacements, refusals).

A node that refuses batches (one error object instead of a list, an answer of the wrong length, or an HTTP 4xx to
the batch) gets the attempts one by one, and no batch again from this manager. A transport failure reaches every
caller of the batch as ``RpcUnavailable``, as it would have reached each single send."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from web3.types import RPCEndpoint, RPCResponse

from chain.client import FailoverProvider
from chain.errors import RpcUnavailable

log = logging.getLogger("chain.transactions")

#: attempts per batch request (geth's default limit is 1,000 a batch; hosted nodes often allow 100 or more)
MAX_BATCH = 100
SEND_RAW = RPCEndpoint("eth_sendRawTransaction")


class Broadcasts:
    """``eth_sendRawTransaction`` for one manager, grouped into batch requests (see the module docstring)."""

    def __init__(self, provider: FailoverProvider, *, max_batch: int = MAX_BATCH) -> None:
        self.provider = provider
        self.max_batch = max_batch
        self.batches_refused = False
        self._waiting: list[tuple[str, asyncio.Future[RPCResponse]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def send(self, raw: str) -> RPCResponse:
        """Broadcast the signed transaction ``raw`` (0x-hex); the node's answer to it (``result`` or ``error``).
        Raises RpcUnavailable when no RPC URL answered."""
        if self.batches_refused:
            return await self._single(raw)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RPCResponse] = loop.create_future()
        self._waiting.append((raw, future))
        if self._drainer is None:  # started after the attempts ready now have joined (the loop runs them first)
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _single(self, raw: str) -> RPCResponse:
        return await self.provider.make_request(SEND_RAW, [raw])

    async def _drain(self) -> None:
        batch: list[tuple[str, asyncio.Future[RPCResponse]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                chunks = [batch[start : start + self.max_batch] for start in range(0, len(batch), self.max_batch)]
                await asyncio.gather(*(self._broadcast(chunk) for chunk in chunks))
        except BaseException:  # interrupted (the loop closing): no caller is left waiting for ever
            waiting, self._waiting = self._waiting, []
            _fail(batch + waiting, RpcUnavailable("the broadcast was interrupted"))
            raise
        finally:
            self._drainer = None

    async def _broadcast(self, chunk: list[tuple[str, asyncio.Future[RPCResponse]]]) -> None:
        if len(chunk) == 1 or self.batches_refused:
            await self._one_by_one(chunk)
            return
        try:
            answers: Any = await self.provider.make_batch_request([(SEND_RAW, [raw]) for raw, _ in chunk])
        except RpcUnavailable as err:
            if _refused_by_status(err):
                self._refused(f"HTTP {err.__cause__}")
                await self._one_by_one(chunk)
                return
            _fail(chunk, err)
            return
        except Exception as err:  # an answer that is not JSON-RPC: each caller learns it, as from a single send
            _fail(chunk, err)
            return
        if not isinstance(answers, list) or len(answers) != len(chunk):
            self._refused(str(answers.get("error") if isinstance(answers, dict) else f"{len(answers)} answers"))
            await self._one_by_one(chunk)
            return
        for (_, future), answer in zip(chunk, answers, strict=True):
            if not future.done():
                future.set_result(answer)

    def _refused(self, why: str) -> None:
        if not self.batches_refused:
            log.warning("%s refused a batch of transactions (%s): sending them one by one", self.provider, why[:200])
        self.batches_refused = True

    async def _one_by_one(self, chunk: list[tuple[str, asyncio.Future[RPCResponse]]]) -> None:
        answers = await asyncio.gather(*(self._single(raw) for raw, _ in chunk), return_exceptions=True)
        for (_, future), answer in zip(chunk, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
                future.exception()  # mark retrieved: its caller may have been cancelled
            else:
                future.set_result(answer)


def _refused_by_status(err: RpcUnavailable) -> bool:
    """The node answered the batch with an HTTP client error (400, 405, 413 …): it refuses batches, it is not away."""
    cause = err.__cause__
    return isinstance(cause, aiohttp.ClientResponseError) and 400 <= cause.status < 500


def _fail(chunk: list[tuple[str, asyncio.Future[RPCResponse]]], err: BaseException) -> None:
    for _, future in chunk:
        if not future.done():
            future.set_exception(err)
            future.exception()  # mark retrieved: its caller may have been cancelled
