"""A bounded cache of name-screening results, keyed by the normalised name and the name list's version.

The fuzzy search over every listed name is the costliest pure step of a credit request, and the same borrower's
name is screened again and again (each credit request, each acceptance). A result depends only on the name, the
list and the matching policy, so it is kept by (normalised name, list version, threshold, limit); the normalised
name is the matcher's own ``spelling_key``, through which it sees a query. A new list version is a new key, and
entries of the old version age out of the bound. Thread-safe, since screening runs in worker threads; the search
itself runs outside the lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_MAX_ENTRIES = 10_000


CacheKey = tuple[str, str, float, int]  # the name's spelling key, list version label, threshold, limit


class NameScreenCache(Generic[T]):
    """Least-recently-used, at most ``max_entries`` results."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("a name-screen cache holds at least one entry")
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, T] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> T | None:
        """The result kept for ``key`` (a hit), or None (not counted as a miss: nothing is screened)."""
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key]

    def get_or_screen(self, key: CacheKey, screen: Callable[[], T]) -> T:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
            self.misses += 1
        result = screen()  # two threads may both screen a new name once; they store the same result
        with self._lock:
            self._entries[key] = result
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return result
