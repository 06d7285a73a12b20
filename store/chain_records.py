"""Plain records crossing the chain store's boundary (the chain layer never sees ORM rows), and their mapping from
rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store.chain_rows import ChainAttemptRow, ChainIntentRow


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    tx_hash: str
    nonce: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    gas: int
    raw: str
    status: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class IntentRecord:
    key: str
    chain_id: int
    sender: str
    to_address: str | None
    data: str
    value: int
    gas: int | None
    payload_hash: str
    status: str
    #: what its sending and its outcome wrote: none of them for a new intent
    nonce: int | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    block_hash: str | None = None
    gas_used: int | None = None
    contract_address: str | None = None
    error: str | None = None
    attempts: tuple[AttemptRecord, ...] = field(default=())
    updated_at: datetime | None = None
    owner: str | None = None
    lease_expires_at: datetime | None = None

    def owned_elsewhere(self, owner: str, now: datetime) -> bool:
        """Whether another manager holds this intent's unexpired lease (so ``owner`` must leave it alone)."""
        return (
            self.owner is not None
            and self.owner != owner
            and self.lease_expires_at is not None
            and self.lease_expires_at >= now
        )


@dataclass(frozen=True, slots=True)
class MinedUpdate:
    intent_key: str
    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int
    contract_address: str | None
    success: bool
    #: the receipt's logs as the node sent them (not stored: handed to the intent's waiter with its Receipt)
    logs: tuple[dict[str, Any], ...] = ()


def attempt_record(row: ChainAttemptRow) -> AttemptRecord:
    return AttemptRecord(
        tx_hash=row.tx_hash,
        nonce=row.nonce,
        max_fee_per_gas=row.max_fee_per_gas,
        max_priority_fee_per_gas=row.max_priority_fee_per_gas,
        gas=row.gas,
        raw=row.raw,
        status=row.status,
        created_at=row.created_at,
    )


def intent_record(row: ChainIntentRow, attempts: Sequence[ChainAttemptRow] = ()) -> IntentRecord:
    return IntentRecord(
        key=row.key,
        chain_id=row.chain_id,
        sender=row.sender,
        to_address=row.to_address,
        data=row.data,
        value=row.value,
        gas=row.gas,
        payload_hash=row.payload_hash,
        status=row.status,
        nonce=row.nonce,
        tx_hash=row.tx_hash,
        block_number=row.block_number,
        block_hash=row.block_hash,
        gas_used=row.gas_used,
        contract_address=row.contract_address,
        error=row.error,
        attempts=tuple(attempt_record(a) for a in sorted(attempts, key=lambda a: a.created_at)),
        updated_at=row.updated_at,
        owner=row.owner,
        lease_expires_at=row.lease_expires_at,
    )
