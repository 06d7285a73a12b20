"""The outcomes a transaction manager keeps in memory for its waiters (``TransactionManager.wait``): at most
``capacity``, the oldest dropped first, so a long-running process does not grow with every transaction it sent. A
waiter that comes after its outcome was dropped reads it from the intent's stored record instead."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")

#: outcomes kept per transaction manager: far more than are ever waited for at once
DEFAULT_CAPACITY = 10_000


class SettledOutcomes(Generic[T]):
    """A bounded map from intent key to outcome, oldest settled first out."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._outcomes: OrderedDict[str, T] = OrderedDict()

    def settle(self, key: str, outcome: T) -> None:
        self._outcomes[key] = outcome
        self._outcomes.move_to_end(key)
        while len(self._outcomes) > self.capacity:
            self._outcomes.popitem(last=False)

    def get(self, key: str) -> T | None:
        return self._outcomes.get(key)

    def __len__(self) -> int:
        return len(self._outcomes)
