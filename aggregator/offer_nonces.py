"""Offer nonces handed out in sequence, per quote signer and CreditAggregator, from counter rows in the store.

A credit request's nonces — ONE per chain it has quotes on, shared by all its quotes on that chain, so the contract
itself refuses a second loan from one request — are reserved in one short transaction before the offers are
signed; a nonce whose quotes are never written is simply skipped (a nonce only has to be unused, not gap-free)."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from store.aggregator import OfferNonceKey, SqlOfferNonceRepository
from store.db import Database


class OfferNonceAllocator:
    """Reserves blocks of offer nonces. The row locks order processes on PostgreSQL (taken in key order, so two
    requests never wait on each other crosswise); the in-process lock orders threads on SQLite, which ignores FOR
    UPDATE (SQLite is single-process here, as for the chain's nonces)."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._lock = threading.Lock()

    def reserve(self, counts: Mapping[OfferNonceKey, int]) -> dict[OfferNonceKey, range]:
        """For each key, ``count`` nonces no other caller of this store gets."""
        if bad := {key: count for key, count in counts.items() if count < 1}:
            raise ValueError(f"counts must be at least 1: {bad}")
        with self._lock, self._db.unit_of_work() as uow:
            repository = SqlOfferNonceRepository(uow.session)
            blocks = {key: repository.reserve(key, counts[key]) for key in sorted(counts)}
            uow.commit()
        return blocks
