"""One ``asyncio.Lock`` per loan in this process, kept only while something holds or awaits it (a weak value), so
that one loan's work is done one at a time here without a lock left behind for every loan ever seen. Across processes
the database's row lock (``hold_loan``) or the chain's own state decides; this only spares a process racing itself."""

from __future__ import annotations

import asyncio
from weakref import WeakValueDictionary


class LoanLocks:
    """``locks(loan_id)``: the lock of that loan, made on first use."""

    def __init__(self) -> None:
        self._locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()

    def __call__(self, loan_id: str) -> asyncio.Lock:
        lock = self._locks.get(loan_id)
        if lock is None:
            lock = self._locks[loan_id] = asyncio.Lock()
        return lock
