"""A mined transaction's events into the ledger at once, from its receipt: what the request path and the servicing
jobs do after sending, so a borrower sees the outcome without waiting for the indexer (which applies the same facts
again later; ``record_events`` is idempotent). Services take a ``ReceiptRecorder`` (``LedgerReceipts`` here; unit
tests pass a fake)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from hexbytes import HexBytes

from aggregator.ledger import LedgerChain, receipt_decoder
from aggregator.platform import ChainRuntime
from chain.deployment import DeploymentRecord
from chain.events import ChainEvent
from store.db import Database
from store.ledger import SOURCE_RECEIPT
from store.loan_ledger import apply_in_own_unit


async def apply_receipt(
    database: Database, w3: Any, record: DeploymentRecord, chain_id: int, tx_hash: str
) -> list[ChainEvent]:
    """Decode the receipt of ``tx_hash`` (our contracts' logs only), apply its events to the ledger in one unit of
    work, and return them."""
    receipt = await w3.eth.get_transaction_receipt(HexBytes(tx_hash))
    events = receipt_decoder(record, w3.codec).decode_receipt(chain_id, receipt)
    await asyncio.to_thread(apply_in_own_unit, database, LedgerChain.from_record(record), events, source=SOURCE_RECEIPT)
    return events


class ReceiptRecorder(Protocol):
    async def record(self, chain: ChainRuntime, tx_hash: str) -> list[ChainEvent]:
        """The events of ``tx_hash``'s receipt on ``chain``, applied to the ledger."""
        ...


class LedgerReceipts:
    """Receipts into the ledger in ``database`` (``apply_receipt``)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def record(self, chain: ChainRuntime, tx_hash: str) -> list[ChainEvent]:
        return await apply_receipt(self._db, chain.w3, chain.record, chain.chain_id, tx_hash)
