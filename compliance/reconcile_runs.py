"""Reconciliation runs as stored: a run's summary and its discrepancies as plain values, for the API's lists and the
report (``compliance.reconcile_report``). Read through ``store.reconciliation_runs``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ReconciliationRun:
    id: str
    started_by: str
    status: str  # running | done | failed
    created_at: datetime
    finished_at: datetime | None
    digest: str | None  # 0x keccak256 of the canonical JSON of the result
    counts: dict[str, int]  # per category, every chain
    chains: list[dict[str, Any]]  # per chain: block range, facts read, counts, pool flows
    error: str | None = None


@dataclass(frozen=True, slots=True)
class StoredDiscrepancy:
    """One discrepancy of a run: ``id`` is the run's id and the item's position (its order); ``created_at`` is
    the run's."""

    id: str
    created_at: datetime
    chain_name: str
    category: str
    subject: str
    what: str
    detail: str
    tx_hash: str | None
    block_number: int | None
    record_ref: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chain": self.chain_name,
            "category": self.category,
            "subject": self.subject,
            "what": self.what,
            "detail": self.detail,
            "txHash": self.tx_hash,
            "blockNumber": self.block_number,
            "recordRef": self.record_ref,
        }
