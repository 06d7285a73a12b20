"""The chain layer's tables: transaction intents and their signed attempts, nonce counters and released nonces per
(chain, account), event-reader checkpoints with the block hashes they were read at, reorg reports and
chain-selection decisions; the statuses an intent and an attempt go through."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base
from store.types import Uint256, UtcDateTime

# rows per multi-row statement: well under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters
BATCH_ROWS = 500
# Block numbers, nonces and gas outgrow 32 bits on busy chains; surrogate ids stay INTEGER (SQLite's rowid).
AUTO_ID = Integer

# Intent statuses. Terminal: confirmed, reverted, failed, dropped.
PENDING, SIGNED, SENT, MINED = "pending", "signed", "sent", "mined"
CONFIRMED, REVERTED, FAILED, DROPPED = "confirmed", "reverted", "failed", "dropped"
OPEN_STATUSES = (PENDING, SIGNED, SENT, MINED)
TERMINAL_STATUSES = (CONFIRMED, REVERTED, FAILED, DROPPED)
# Attempt statuses.
ATTEMPT_SIGNED, ATTEMPT_SENT, ATTEMPT_MINED = "signed", "sent", "mined"
ATTEMPT_REPLACED, ATTEMPT_REJECTED = "replaced", "rejected"


def utc_now() -> datetime:
    return datetime.now(UTC)


class ChainIntentRow(Base):
    """One thing the platform wants done on chain, keyed by the caller's idempotency key."""

    __tablename__ = "chain_intents"
    # a read by the key's prefix (every attempt of an intent, ``numbered_intents``): on PostgreSQL under a collation
    # other than C only a ``text_pattern_ops`` index serves ``LIKE 'prefix%'`` (migration 0039)
    __table_args__ = (Index("ix_chain_intents_key_prefix", "key", postgresql_ops={"key": "text_pattern_ops"}),)

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger, index=True)
    sender: Mapped[str] = mapped_column(String(42))
    to_address: Mapped[str | None] = mapped_column(String(42), nullable=True)
    data: Mapped[str] = mapped_column(Text)
    value: Mapped[int] = mapped_column(Uint256())
    gas: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    payload_hash: Mapped[str] = mapped_column(String(66))
    status: Mapped[str] = mapped_column(String(16), index=True)
    nonce: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    block_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    gas_used: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    contract_address: Mapped[str | None] = mapped_column(String(42), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # The transaction manager that follows this open intent, and until when unless it renews: another manager of
    # the same account takes the intent over only once that has passed (its owner stopped renewing: it died).
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ChainAttemptRow(Base):
    """One signed transaction for an intent; replacements are further attempts at the same nonce."""

    __tablename__ = "chain_tx_attempts"

    tx_hash: Mapped[str] = mapped_column(String(66), primary_key=True)
    intent_key: Mapped[str] = mapped_column(String(200), index=True)
    nonce: Mapped[int] = mapped_column(BigInteger)
    max_fee_per_gas: Mapped[int] = mapped_column(Uint256())
    max_priority_fee_per_gas: Mapped[int] = mapped_column(Uint256())
    gas: Mapped[int] = mapped_column(BigInteger)
    raw: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ChainNonceRow(Base):
    """The next never-used nonce of one account on one chain (locked with SELECT … FOR UPDATE)."""

    __tablename__ = "chain_nonces"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    next_nonce: Mapped[int] = mapped_column(BigInteger)


class ChainNonceGapRow(Base):
    """A nonce handed out and then released (its transaction never reached the chain): reused first."""

    __tablename__ = "chain_nonce_gaps"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    nonce: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class ChainCheckpointRow(Base):
    """How far an event reader has delivered on one chain, and the hash of that block."""

    __tablename__ = "chain_event_checkpoints"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reader: Mapped[str] = mapped_column(String(64), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ChainBlockHashRow(Base):
    """Hashes of recently delivered blocks: where a reorg is traced back to the common ancestor."""

    __tablename__ = "chain_event_blocks"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reader: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[str] = mapped_column(String(66))


class ChainReorgRow(Base):
    __tablename__ = "chain_reorgs"

    id: Mapped[int] = mapped_column(AUTO_ID, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger, index=True)
    reader: Mapped[str] = mapped_column(String(64))
    checkpoint_block: Mapped[int] = mapped_column(BigInteger)
    ancestor_block: Mapped[int] = mapped_column(BigInteger)
    depth: Mapped[int] = mapped_column(BigInteger)
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ChainSelectionRow(Base):
    """One chain-selection decision with every candidate's cost and the reasons."""

    __tablename__ = "chain_selections"

    id: Mapped[int] = mapped_column(AUTO_ID, primary_key=True, autoincrement=True)
    operation: Mapped[str] = mapped_column(String(128))
    chosen: Mapped[str | None] = mapped_column(String(64), nullable=True)
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


CHAIN_TABLES: tuple[Table, ...] = tuple(
    cast(Table, model.__table__)
    for model in (
        ChainIntentRow,
        ChainAttemptRow,
        ChainNonceRow,
        ChainNonceGapRow,
        ChainCheckpointRow,
        ChainBlockHashRow,
        ChainReorgRow,
        ChainSelectionRow,
    )
)
