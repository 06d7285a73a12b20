"""Offer nonces handed out in sequence, per quote signer and CreditAggregator, from a counter row in the store.

A block is reserved in its own short transaction before the offers are signed; a block whose quotes are never
written is simply skipped (a nonce only has to be unused, not gap-free)."""

from __future__ import annotations

import threading

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from store.aggregator import OfferNonceRow
from store.db import Database

FIRST_NONCE = 1


class OfferNonceAllocator:
    """Reserves blocks of offer nonces. The row lock orders processes on PostgreSQL; the in-process lock orders
    threads on SQLite, which ignores FOR UPDATE (SQLite is single-process here, as for the chain's nonces)."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._lock = threading.Lock()

    def reserve(self, chain_id: int, contract: str, signer: str, count: int) -> range:
        """``count`` nonces no other caller of this store gets, for ``signer``'s offers on ``contract``."""
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        with self._lock, self._db.unit_of_work() as uow:
            session = uow.session
            if session.get(OfferNonceRow, (chain_id, contract, signer)) is None:
                try:
                    with session.begin_nested():
                        session.add(
                            OfferNonceRow(chain_id=chain_id, contract=contract, signer=signer, next_nonce=FIRST_NONCE)
                        )
                except IntegrityError:
                    pass  # created concurrently by another process: the row lock below orders us after it
            row = session.scalars(
                select(OfferNonceRow)
                .where(
                    OfferNonceRow.chain_id == chain_id,
                    OfferNonceRow.contract == contract,
                    OfferNonceRow.signer == signer,
                )
                .with_for_update()
                .execution_options(populate_existing=True)
            ).one()
            first = row.next_nonce
            row.next_nonce = first + count
            uow.commit()
        return range(first, first + count)
