"""A credit request's offers disclosed as each provider answers, while the slower providers are still being asked
(``fan_out``'s ``on_answer``): after the last answer only its own offers are left to disclose.

The drafts and the compliance decision records come out in the order of the outcomes given to ``drafts`` (the
fan-out's order, by provider), whatever order the answers came in: the request's records, quotes and ranking are
those of disclosing every outcome at once after the fan-out.

An answer whose disclosure is long work (``offload``: many installments, each a payment computed and checked) is
disclosed in a worker thread, not on the event loop: one lender answering 20 offers of 600 installments held the loop
0.6 s per credit request, every other request of the process waiting. ``settled`` waits for those."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial
from typing import Generic, TypeVar

from aggregator.fanout import ProviderOutcome
from compliance import DecisionRecord

Draft = TypeVar("Draft")
#: discloses one outcome's offers for a borrower (covered by the MLA or not), appending its decision records; may
#: mark the outcome dropped
Disclose = Callable[[ProviderOutcome, list[DecisionRecord], bool], list[Draft]]


class EarlyDisclosure(Generic[Draft]):
    """Answers are disclosed once the borrower's MLA status (``covered``) is known; until then they wait. An error
    while disclosing is raised by ``drafts``, as disclosing after the fan-out would have raised it. ``after`` is
    called on the event loop with each answer's drafts as they are disclosed; an answer ``offload`` says is heavy is
    disclosed in a worker thread (``disclose`` must then be safe to run there, beside the event loop: it works on its
    outcome and its own records only)."""

    def __init__(
        self,
        disclose: Disclose[Draft],
        after: Callable[[list[Draft]], None] | None = None,
        offload: Callable[[ProviderOutcome], bool] | None = None,
    ) -> None:
        self._disclose, self._after, self._offload = disclose, after, offload
        self._covered: bool | None = None
        self._waiting: list[ProviderOutcome] = []
        self._disclosed: dict[int, tuple[list[Draft], list[DecisionRecord]]] = {}  # by id(outcome)
        self._pending: dict[int, asyncio.Future[tuple[list[Draft], list[DecisionRecord]]]] = {}  # in worker threads
        self._error: Exception | None = None
        self._closed = False

    def answered(self, outcome: ProviderOutcome) -> None:
        """A provider's outcome has come (``fan_out``'s ``on_answer``)."""
        if self._closed:
            return
        if self._covered is None:
            self._waiting.append(outcome)
        else:
            self._disclose_one(outcome)

    def covered(self, covered: bool) -> None:
        """The borrower's MLA status is known: the waiting answers are disclosed now, the next ones as they come."""
        self._covered = covered
        waiting, self._waiting = self._waiting, []
        for outcome in waiting:
            self._disclose_one(outcome)

    async def settled(self) -> None:
        """Wait for the answers being disclosed in worker threads (call before ``drafts``)."""
        while self._pending:
            await asyncio.wait(list(self._pending.values()))

    def cancel(self) -> None:
        """The request ends without its drafts: no disclosure in a worker thread is waited for."""
        self._closed = True
        for future in self._pending.values():
            future.cancel()

    def drafts(self, outcomes: Sequence[ProviderOutcome], covered: bool, records: list[DecisionRecord]) -> list[Draft]:
        """Every outcome's drafts, in the order of ``outcomes`` (those not disclosed yet are disclosed now); their
        decision records are appended to ``records`` in the same order. No answer is taken after this."""
        self._closed = True
        assert not self._pending, "settled() first: answers are being disclosed in worker threads"
        if self._error is not None:
            raise self._error
        self._covered = covered
        drafts: list[Draft] = []
        for outcome in outcomes:
            found = self._disclosed.get(id(outcome))
            if found is None:
                found = self._disclose_now(outcome, covered)
            drafts += found[0]
            records += found[1]
        return drafts

    def _disclose_one(self, outcome: ProviderOutcome) -> None:
        key = id(outcome)
        if self._error is not None or key in self._disclosed or key in self._pending:
            return
        assert self._covered is not None
        if self._offload is not None and self._offload(outcome):
            work = asyncio.ensure_future(asyncio.to_thread(self._disclose_now, outcome, self._covered))
            self._pending[key] = work
            work.add_done_callback(partial(self._offloaded, key))
            return
        try:
            self._disclosed[key] = found = self._disclose_now(outcome, self._covered)
        except Exception as err:  # raised by drafts(): a callback's error would only be logged by the event loop
            self._error = err
            return
        if self._after is not None:
            self._after(found[0])

    def _offloaded(self, key: int, work: asyncio.Future[tuple[list[Draft], list[DecisionRecord]]]) -> None:
        del self._pending[key]
        if work.cancelled():
            return
        error = work.exception()
        if error is not None:
            if self._error is None and isinstance(error, Exception):
                self._error = error
            return
        self._disclosed[key] = found = work.result()
        if self._after is not None and not self._closed:
            self._after(found[0])

    def _disclose_now(self, outcome: ProviderOutcome, covered: bool) -> tuple[list[Draft], list[DecisionRecord]]:
        records: list[DecisionRecord] = []
        drafts = self._disclose(outcome, records, covered)
        for record in records:
            record.record_hash()  # kept by the record for its row and its audit entry: hashed while others answer
        return drafts, records
