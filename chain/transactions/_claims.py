"""Whether a manager's claim round would find anything: one read shared by every manager of a process.

A process runs one transaction manager per sending account and chain (five roles on three chains: fifteen), and each
claimed what dead owners left every third of its lease — fifteen ``UPDATE … RETURNING`` transactions per round
that almost always found nothing. ``OpenLeases`` reads the open intents' accounts, owners and lease expiries once
(open intents are the ones in flight: few rows), keeps the answer for a sixth of the lease, and a manager claims only
when that read shows its account an intent with a free or expired lease, or more intents under its own name than it
follows (one it stopped following when its submission failed half-way). A dead owner's intents are still claimed:
within one round and that sixth after their lease ran out, instead of within one round."""

from __future__ import annotations

import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from store.chain import SqlChainStore

_shared: weakref.WeakKeyDictionary[SqlChainStore, OpenLeases] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class LeaseView:
    """One read of the open intents' leases."""

    free: frozenset[tuple[int, str]] = frozenset()  # accounts with an intent whose lease is free or expired
    owned: Counter[tuple[int, str, str]] = field(default_factory=Counter)  # open intents per (account, owner)

    @classmethod
    def of(cls, now: datetime, rows: list[tuple[int, str, str | None, datetime | None]]) -> LeaseView:
        free = {
            (chain_id, sender) for chain_id, sender, owner, expires in rows if not owner or not expires or expires < now
        }
        owned = Counter((chain_id, sender, owner) for chain_id, sender, owner, _ in rows if owner)
        return cls(frozenset(free), owned)

    def to_claim(self, chain_id: int, sender: str, owner: str, following: int) -> bool:
        """Whether ``owner`` (following ``following`` intents of the account) has anything to claim."""
        return (chain_id, sender) in self.free or self.owned[(chain_id, sender, owner)] > following


class OpenLeases:
    """The open intents' leases in one store, read at most once per ``max_age`` seconds."""

    def __init__(self, store: SqlChainStore, clock: Callable[[], float] = time.monotonic) -> None:
        self._store, self._clock = store, clock
        self._read_at = float("-inf")
        self._view = LeaseView()

    @classmethod
    def of(cls, store: SqlChainStore) -> OpenLeases:
        """The one instance shared by every manager on ``store``."""
        shared = _shared.get(store)
        if shared is None:
            shared = _shared[store] = cls(store)
        return shared

    async def view(self, max_age: float) -> LeaseView:
        """A read younger than ``max_age`` seconds."""
        if self._clock() - self._read_at >= max_age:
            started = self._clock()
            self._view = LeaseView.of(*await self._store.open_leases())
            self._read_at = started
        return self._view
