"""A credit request's offers disclosed as each provider answers, while the slower providers are still being asked
(``fan_out``'s ``on_answer``): after the last answer only its own offers are left to disclose.

The drafts and the compliance decision records come out in the order of the outcomes given to ``drafts`` (the
fan-out's order, by provider), whatever order the answers came in: the request's records, quotes and ranking are
those of disclosing every outcome at once after the fan-out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from aggregator.fanout import ProviderOutcome
from compliance import DecisionRecord

Draft = TypeVar("Draft")
#: discloses one outcome's offers for a borrower (covered by the MLA or not), appending its decision records; may
#: mark the outcome dropped
Disclose = Callable[[ProviderOutcome, list[DecisionRecord], bool], list[Draft]]


class EarlyDisclosure(Generic[Draft]):
    """Answers are disclosed once the borrower's MLA status (``covered``) is known; until then they wait. An error
    while disclosing is raised by ``drafts``, as disclosing after the fan-out would have raised it."""

    def __init__(self, disclose: Disclose[Draft]) -> None:
        self._disclose = disclose
        self._covered: bool | None = None
        self._waiting: list[ProviderOutcome] = []
        self._disclosed: dict[int, tuple[list[Draft], list[DecisionRecord]]] = {}  # by id(outcome)
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

    def drafts(self, outcomes: Sequence[ProviderOutcome], covered: bool, records: list[DecisionRecord]) -> list[Draft]:
        """Every outcome's drafts, in the order of ``outcomes`` (those not disclosed yet are disclosed now); their
        decision records are appended to ``records`` in the same order. No answer is taken after this."""
        self._closed = True
        if self._error is not None:
            raise self._error
        self._covered = covered
        drafts: list[Draft] = []
        for outcome in outcomes:
            found = self._disclosed.get(id(outcome))
            if found is None:
                found = self._disclose_now(outcome)
            drafts += found[0]
            records += found[1]
        return drafts

    def _disclose_one(self, outcome: ProviderOutcome) -> None:
        if self._error is not None or id(outcome) in self._disclosed:
            return
        try:
            self._disclosed[id(outcome)] = self._disclose_now(outcome)
        except Exception as err:  # raised by drafts(): a callback's error would only be logged by the event loop
            self._error = err

    def _disclose_now(self, outcome: ProviderOutcome) -> tuple[list[Draft], list[DecisionRecord]]:
        assert self._covered is not None
        records: list[DecisionRecord] = []
        drafts = self._disclose(outcome, records, self._covered)
        for record in records:
            record.record_hash()  # kept by the record for its row and its audit entry: hashed while others answer
        return drafts, records
