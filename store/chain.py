"""Persistence owned by ``chain/``: transaction intents and their signed attempts, nonce counters and released
nonces per (chain, account), event-reader checkpoints with the block hashes they were read at, reorg reports, and
chain-selection decisions.

``ChainRepository`` takes a Session and never commits; ``SqlChainStore`` is the adapter the chain layer calls: it
opens one unit of work per operation in a worker thread (the event loop never blocks on the database) and commits.
On SQLite (the local default) the nonce counter is correct within one process only; PostgreSQL row locks
(``SELECT … FOR UPDATE``) make it hold across processes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from store.base import Base
from store.types import Uint256, UtcDateTime

T = TypeVar("T")
Item = TypeVar("Item")
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


def _now() -> datetime:
    return datetime.now(UTC)


class ChainIntentRow(Base):
    """One thing the platform wants done on chain, keyed by the caller's idempotency key."""

    __tablename__ = "chain_intents"

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


# Plain records crossing the store boundary (the chain layer never sees ORM rows).


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
    nonce: int | None
    tx_hash: str | None
    block_number: int | None
    block_hash: str | None
    gas_used: int | None
    contract_address: str | None
    error: str | None
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


def _attempt(row: ChainAttemptRow) -> AttemptRecord:
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


def _intent(row: ChainIntentRow, attempts: Sequence[ChainAttemptRow] = ()) -> IntentRecord:
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
        attempts=tuple(_attempt(a) for a in sorted(attempts, key=lambda a: a.created_at)),
        updated_at=row.updated_at,
        owner=row.owner,
        lease_expires_at=row.lease_expires_at,
    )


class ChainRepository:
    """Reads and writes chain rows in the caller's session; never commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # intents

    def get_intent(self, key: str) -> IntentRecord | None:
        row = self.session.get(ChainIntentRow, key)
        if row is None:
            return None
        attempts = self.session.scalars(select(ChainAttemptRow).where(ChainAttemptRow.intent_key == key)).all()
        return _intent(row, attempts)

    def add_intent(self, record: IntentRecord) -> None:
        now = _now()
        self.session.add(
            ChainIntentRow(
                key=record.key,
                chain_id=record.chain_id,
                sender=record.sender,
                to_address=record.to_address,
                data=record.data,
                value=record.value,
                gas=record.gas,
                payload_hash=record.payload_hash,
                status=record.status,
                created_at=now,
                updated_at=now,
                owner=record.owner,
                lease_expires_at=record.lease_expires_at,
            )
        )

    def update_intent(self, key: str, **values: Any) -> None:
        self.session.execute(
            update(ChainIntentRow).where(ChainIntentRow.key == key).values(updated_at=_now(), **values)
        )

    def add_attempt(self, intent_key: str, attempt: AttemptRecord) -> None:
        self.session.add(
            ChainAttemptRow(
                tx_hash=attempt.tx_hash,
                intent_key=intent_key,
                nonce=attempt.nonce,
                max_fee_per_gas=attempt.max_fee_per_gas,
                max_priority_fee_per_gas=attempt.max_priority_fee_per_gas,
                gas=attempt.gas,
                raw=attempt.raw,
                status=attempt.status,
                created_at=attempt.created_at,
            )
        )

    def set_attempt_status(self, tx_hashes: Iterable[str], status: str) -> None:
        hashes = list(tx_hashes)
        if hashes:
            self.session.execute(
                update(ChainAttemptRow).where(ChainAttemptRow.tx_hash.in_(hashes)).values(status=status)
            )

    def open_intents(self, chain_id: int, sender: str) -> list[IntentRecord]:
        rows = self.session.scalars(
            select(ChainIntentRow).where(
                ChainIntentRow.chain_id == chain_id,
                ChainIntentRow.sender == sender,
                ChainIntentRow.status.in_(OPEN_STATUSES),
            )
        ).all()
        return self._with_attempts(rows)

    def intents(self, keys: Sequence[str]) -> list[IntentRecord]:
        if not keys:
            return []
        return self._with_attempts(self.session.scalars(select(ChainIntentRow).where(ChainIntentRow.key.in_(keys))))

    def _with_attempts(self, rows: Iterable[ChainIntentRow]) -> list[IntentRecord]:
        rows = list(rows)
        if not rows:
            return []
        keys = [row.key for row in rows]
        attempts: dict[str, list[ChainAttemptRow]] = {}
        for attempt in self.session.scalars(select(ChainAttemptRow).where(ChainAttemptRow.intent_key.in_(keys))):
            attempts.setdefault(attempt.intent_key, []).append(attempt)
        return [_intent(row, attempts.get(row.key, [])) for row in rows]

    # batches: one statement for many intents (the lifecycle's persistence is grouped per moment, not per
    # transaction)

    def add_intents(self, records: Sequence[IntentRecord], dialect: str) -> set[str]:
        """Insert the intents whose key is not stored yet, in one statement per ``BATCH_ROWS``; the keys inserted."""
        now = _now()
        table = cast(Table, ChainIntentRow.__table__)
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        inserted: set[str] = set()
        for start in range(0, len(records), BATCH_ROWS):
            rows = [
                {
                    "key": r.key,
                    "chain_id": r.chain_id,
                    "sender": r.sender,
                    "to_address": r.to_address,
                    "data": r.data,
                    "value": r.value,
                    "gas": r.gas,
                    "payload_hash": r.payload_hash,
                    "status": r.status,
                    "created_at": now,
                    "updated_at": now,
                    "owner": r.owner,
                    "lease_expires_at": r.lease_expires_at,
                }
                for r in records[start : start + BATCH_ROWS]
            ]
            statement = insert(table).values(rows).on_conflict_do_nothing(index_elements=["key"])
            inserted.update(str(key) for key in self.session.execute(statement.returning(table.c.key)).scalars())
        return inserted

    def held_by(self, owners: Mapping[str, str | None]) -> set[str]:
        """Of ``owners``' keys, those whose intent is held by the owner given (any holder when None); the rows stay
        locked to the end of the transaction (PostgreSQL), so nobody claims them in between."""
        rows = self.session.execute(
            select(ChainIntentRow.key, ChainIntentRow.owner)
            .where(ChainIntentRow.key.in_(list(owners)))
            .with_for_update()
        ).all()
        return {str(key) for key, owner in rows if owners[str(key)] is None or owners[str(key)] == owner}

    def fence(self, keys: Sequence[str], owner: str, now: datetime) -> set[str]:
        """Of ``keys``, the open intents ``owner`` still holds under an unexpired lease, in one statement that also
        write-locks them to the end of the transaction (a row lock on PostgreSQL, the database's write lock on
        SQLite): nobody claims them before the caller's writes commit."""
        if not keys:
            return set()
        result = self.session.execute(
            update(ChainIntentRow)
            .where(
                ChainIntentRow.key.in_(list(keys)),
                ChainIntentRow.owner == owner,
                ChainIntentRow.lease_expires_at >= now,
                ChainIntentRow.status.in_(OPEN_STATUSES),
            )
            .values(updated_at=now)
            .returning(ChainIntentRow.key)
            .execution_options(synchronize_session=False)
        )
        return {str(key) for key in result.scalars()}

    def update_intents(self, values: Sequence[dict[str, Any]]) -> None:
        """Per-intent values (each dict has ``key`` and the same other columns) in one executemany."""
        if not values:
            return
        table = cast(Table, ChainIntentRow.__table__)
        now = _now()
        columns = [c for c in values[0] if c != "key"]
        statement = (
            update(table)
            .where(table.c.key == bindparam("b_key"))
            .values(updated_at=now, **{c: bindparam(f"b_{c}") for c in columns})
        )
        self.session.connection().execute(statement, [{f"b_{c}": v for c, v in row.items()} for row in values])

    def add_attempts(self, attempts: Sequence[tuple[str, AttemptRecord]]) -> None:
        if not attempts:
            return
        table = cast(Table, ChainAttemptRow.__table__)
        self.session.connection().execute(
            table.insert(),
            [
                {
                    "tx_hash": a.tx_hash,
                    "intent_key": key,
                    "nonce": a.nonce,
                    "max_fee_per_gas": a.max_fee_per_gas,
                    "max_priority_fee_per_gas": a.max_priority_fee_per_gas,
                    "gas": a.gas,
                    "raw": a.raw,
                    "status": a.status,
                    "created_at": a.created_at,
                }
                for key, a in attempts
            ],
        )

    # ownership: one manager per open intent, under a lease it renews (see SqlChainStore.claim_stale)

    def claim(self, where: Any, owner: str, now: datetime, expires_at: datetime) -> list[str]:
        """Take every open intent matching ``where`` whose lease is free, expired or already ``owner``'s; one
        statement. On PostgreSQL a concurrent claimer of the same row waits for the row lock and re-checks the
        condition, so exactly one of them gets it."""
        claimable = or_(
            ChainIntentRow.owner.is_(None),
            ChainIntentRow.owner == owner,
            ChainIntentRow.lease_expires_at.is_(None),
            ChainIntentRow.lease_expires_at < now,
        )
        result = self.session.execute(
            update(ChainIntentRow)
            .where(where, ChainIntentRow.status.in_(OPEN_STATUSES), claimable)
            .values(owner=owner, lease_expires_at=expires_at, updated_at=now)
            .returning(ChainIntentRow.key)
            .execution_options(synchronize_session=False)
        )
        return [str(key) for key in result.scalars()]

    def renew(self, chain_id: int, sender: str, owner: str, expires_at: datetime) -> set[str]:
        """Extend every open intent ``owner`` still holds on (chain, sender); the keys it holds. One statement."""
        result = self.session.execute(
            update(ChainIntentRow)
            .where(
                ChainIntentRow.owner == owner,
                ChainIntentRow.chain_id == chain_id,
                ChainIntentRow.sender == sender,
                ChainIntentRow.status.in_(OPEN_STATUSES),
            )
            .values(lease_expires_at=expires_at)
            .returning(ChainIntentRow.key)
            .execution_options(synchronize_session=False)
        )
        return {str(key) for key in result.scalars()}

    def max_nonce(self, chain_id: int, sender: str) -> int | None:
        value = self.session.scalar(
            select(func.max(ChainIntentRow.nonce)).where(
                ChainIntentRow.chain_id == chain_id, ChainIntentRow.sender == sender
            )
        )
        return None if value is None else int(value)

    # nonces

    def ensure_nonce_row(self, chain_id: int, address: str) -> None:
        """Create the counter row when missing; a concurrent creator wins harmlessly (savepoint + IntegrityError)."""
        if self.session.get(ChainNonceRow, (chain_id, address)) is not None:
            return
        try:
            with self.session.begin_nested():
                self.session.add(ChainNonceRow(chain_id=chain_id, address=address, next_nonce=0))
        except IntegrityError:
            pass

    def lock_nonce_row(self, chain_id: int, address: str) -> ChainNonceRow:
        row = self.session.scalars(
            select(ChainNonceRow)
            .where(ChainNonceRow.chain_id == chain_id, ChainNonceRow.address == address)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        return row

    def take_gaps(self, chain_id: int, address: str, limit: int) -> list[int]:
        """Up to ``limit`` released nonces, lowest first, removed from the released set."""
        gaps = [
            int(n)
            for n in self.session.scalars(
                select(ChainNonceGapRow.nonce)
                .where(ChainNonceGapRow.chain_id == chain_id, ChainNonceGapRow.address == address)
                .order_by(ChainNonceGapRow.nonce)
                .limit(limit)
            )
        ]
        if gaps:
            self.session.execute(
                delete(ChainNonceGapRow).where(
                    ChainNonceGapRow.chain_id == chain_id,
                    ChainNonceGapRow.address == address,
                    ChainNonceGapRow.nonce.in_(gaps),
                )
            )
        return gaps

    def add_gap(self, chain_id: int, address: str, nonce: int) -> None:
        self.session.merge(ChainNonceGapRow(chain_id=chain_id, address=address, nonce=nonce))

    def drop_gaps_below(self, chain_id: int, address: str, floor: int) -> None:
        self.session.execute(
            delete(ChainNonceGapRow).where(
                ChainNonceGapRow.chain_id == chain_id,
                ChainNonceGapRow.address == address,
                ChainNonceGapRow.nonce < floor,
            )
        )

    # event checkpoints

    def checkpoint(self, chain_id: int, reader: str) -> tuple[int, str] | None:
        row = self.session.get(ChainCheckpointRow, (chain_id, reader))
        return None if row is None else (row.block_number, row.block_hash)

    def set_checkpoint(self, chain_id: int, reader: str, number: int, block_hash: str) -> None:
        self.session.merge(
            ChainCheckpointRow(
                chain_id=chain_id, reader=reader, block_number=number, block_hash=block_hash, updated_at=_now()
            )
        )

    def delete_checkpoint(self, chain_id: int, reader: str) -> None:
        self.session.execute(
            delete(ChainCheckpointRow).where(
                ChainCheckpointRow.chain_id == chain_id, ChainCheckpointRow.reader == reader
            )
        )

    def add_block_hashes(self, chain_id: int, reader: str, hashes: dict[int, str], keep: int) -> None:
        for number, block_hash in hashes.items():
            self.session.merge(ChainBlockHashRow(chain_id=chain_id, reader=reader, number=number, hash=block_hash))
        if hashes:
            self.session.execute(
                delete(ChainBlockHashRow).where(
                    ChainBlockHashRow.chain_id == chain_id,
                    ChainBlockHashRow.reader == reader,
                    ChainBlockHashRow.number < max(hashes) - keep,
                )
            )

    def block_hashes(self, chain_id: int, reader: str) -> list[tuple[int, str]]:
        """Known (number, hash) pairs, newest first."""
        rows = self.session.execute(
            select(ChainBlockHashRow.number, ChainBlockHashRow.hash)
            .where(ChainBlockHashRow.chain_id == chain_id, ChainBlockHashRow.reader == reader)
            .order_by(ChainBlockHashRow.number.desc())
        ).all()
        return [(int(number), str(block_hash)) for number, block_hash in rows]

    def drop_block_hashes_above(self, chain_id: int, reader: str, number: int) -> None:
        self.session.execute(
            delete(ChainBlockHashRow).where(
                ChainBlockHashRow.chain_id == chain_id,
                ChainBlockHashRow.reader == reader,
                ChainBlockHashRow.number > number,
            )
        )

    def add_reorg(self, chain_id: int, reader: str, checkpoint_block: int, ancestor_block: int) -> None:
        self.session.add(
            ChainReorgRow(
                chain_id=chain_id,
                reader=reader,
                checkpoint_block=checkpoint_block,
                ancestor_block=ancestor_block,
                depth=checkpoint_block - ancestor_block,
                detected_at=_now(),
            )
        )

    def reorgs(self, chain_id: int) -> list[ChainReorgRow]:
        return list(self.session.scalars(select(ChainReorgRow).where(ChainReorgRow.chain_id == chain_id)).all())

    # selection

    def add_selection(self, operation: str, chosen: str | None, candidates: list[dict[str, Any]]) -> None:
        self.session.add(
            ChainSelectionRow(operation=operation, chosen=chosen, candidates=candidates, created_at=_now())
        )


class SqlChainStore:
    """The chain layer's store on SQLAlchemy: each method is one unit of work, run in a worker thread."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        bind = sessions.kw.get("bind")
        self.dialect = bind.dialect.name if bind is not None else "unknown"
        self._batches: dict[Callable[..., Any], list[tuple[Any, asyncio.Future[Any]]]] = {}
        self._draining: set[Callable[..., Any]] = set()
        self._drainers: set[asyncio.Task[None]] = set()

    @property
    def cross_process(self) -> bool:
        """Whether the nonce counter holds across processes (PostgreSQL row locks), not only within one."""
        return self.dialect == "postgresql"

    def _unit(self, work: Callable[[ChainRepository], T]) -> T:
        with self.sessions() as session:
            result = work(ChainRepository(session))
            session.commit()
            return result

    async def run(self, work: Callable[[ChainRepository], T]) -> T:
        """Run ``work`` in one committed unit of work off the event loop."""
        return await asyncio.to_thread(self._unit, work)

    async def run_batched(self, operation: Callable[[ChainRepository, list[Item]], list[T]], item: Item) -> T:
        """Run ``operation`` over ``item`` together with the other items of the same operation: one unit of work
        (a few statements) per batch instead of a few statements and a commit per item. One batch of an operation
        is in flight at a time; the items that arrive meanwhile form the next (group commit), so batches grow with
        the load. Each caller resumes with its own result once its batch is committed; if a batch fails, each of its
        items is re-run alone, so one bad item fails only its own caller."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._batches.setdefault(operation, []).append((item, future))
        if operation not in self._draining:  # drained in a task: a cancelled caller stops no one else's batch
            self._draining.add(operation)
            drainer = asyncio.get_running_loop().create_task(self._drain(operation))
            self._drainers.add(drainer)  # the loop keeps only a weak reference to a task
            drainer.add_done_callback(self._drainers.discard)
        return await future

    async def _drain(self, operation: Callable[[ChainRepository, list[Any]], list[Any]]) -> None:
        try:
            while batch := self._batches.pop(operation, []):
                await self._commit_batch(operation, batch)
        finally:
            self._draining.discard(operation)

    async def _commit_batch(
        self, operation: Callable[[ChainRepository, list[Any]], list[Any]], batch: list[tuple[Any, asyncio.Future[Any]]]
    ) -> None:
        items = [item for item, _ in batch]
        try:
            results = await asyncio.to_thread(self._unit, lambda repo: operation(repo, items))
        except Exception:
            for item, future in batch:
                try:
                    result = (await self.run(_alone(operation, item)))[0]
                except Exception as err:
                    if not future.done():
                        future.set_exception(err)
                else:
                    if not future.done():
                        future.set_result(result)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    # the operations the lifecycle uses

    async def create_intent(self, record: IntentRecord) -> tuple[IntentRecord, bool]:
        """Insert ``record``, or return the intent already stored under its key (``created`` False); batched with
        the other intents created at the same moment (one INSERT … ON CONFLICT DO NOTHING for all)."""
        return await self.run_batched(self._create_intents, record)

    def _create_intents(self, repo: ChainRepository, records: list[IntentRecord]) -> list[tuple[IntentRecord, bool]]:
        inserted = repo.add_intents(records, self.dialect)
        stored = {r.key: r for r in repo.intents([r.key for r in records if r.key not in inserted])}
        results: list[tuple[IntentRecord, bool]] = []
        for record in records:
            if record.key in inserted:
                inserted.discard(record.key)  # the same key twice in one batch: the second finds the first
                stored[record.key] = record
                results.append((record, True))
            else:
                results.append((stored[record.key], False))
        return results

    async def get_intent(self, key: str) -> IntentRecord | None:
        return await self.run(lambda repo: repo.get_intent(key))

    async def claim_stale(self, key: str, owner: str, ttl: timedelta) -> IntentRecord | None:
        """Take over the open intent ``key`` (in any open state: pending, signed, sent, mined) when its owner's
        lease has expired — its process died or stopped renewing — or nobody owns it; the intent as claimed, or
        None while a live owner holds it (a live owner's intent is never re-sent by another) or it is settled."""

        def work(repo: ChainRepository) -> IntentRecord | None:
            now = _now()
            if not repo.claim(ChainIntentRow.key == key, owner, now, now + ttl):
                return None
            return repo.get_intent(key)

        return await self.run(work)

    async def claim_expired(self, chain_id: int, sender: str, owner: str, ttl: timedelta) -> list[IntentRecord]:
        """Take over every open intent of (chain, sender) that nobody holds a live lease on; the intents claimed."""

        def work(repo: ChainRepository) -> list[IntentRecord]:
            now = _now()
            mine = and_(ChainIntentRow.chain_id == chain_id, ChainIntentRow.sender == sender)
            keys = repo.claim(mine, owner, now, now + ttl)
            return repo.intents(keys)

        return await self.run(work)

    async def renew_leases(self, chain_id: int, sender: str, owner: str, ttl: timedelta) -> set[str]:
        """Extend ``owner``'s leases on its open intents of (chain, sender) in one statement; the keys it still
        holds (an intent missing from them was taken over after its lease expired)."""
        return await self.run(lambda repo: repo.renew(chain_id, sender, owner, _now() + ttl))

    async def release_leases(self, chain_id: int, sender: str, owner: str) -> None:
        """``owner`` stops following its open intents of (chain, sender): their leases expire now, so another
        manager claims them at its next round (a manager closing; a dead one's expire by themselves)."""
        await self.run(lambda repo: repo.renew(chain_id, sender, owner, _now() - timedelta(seconds=1)))

    async def record_signed(
        self, key: str, attempt: AttemptRecord, *, replaces: str | None = None, owner: str | None = None
    ) -> bool:
        """Persist a signed attempt (before it is broadcast). With ``owner``, only while ``owner`` holds the intent:
        False (nothing written) once another manager took it over, so a stalled owner never adds a second
        transaction to an intent its successor follows. Batched with the other attempts signed at the same moment."""
        return await self.run_batched(_record_signed, (key, attempt, replaces, owner))

    async def mark_sent(self, tx_hashes: Sequence[tuple[str, str]]) -> None:
        """(intent key, tx hash) pairs whose transaction a node accepted."""

        def work(repo: ChainRepository) -> None:
            repo.set_attempt_status((h for _, h in tx_hashes), ATTEMPT_SENT)
            keys = list({key for key, _ in tx_hashes})
            for start in range(0, len(keys), BATCH_ROWS):
                repo.session.execute(
                    update(ChainIntentRow)
                    .where(ChainIntentRow.key.in_(keys[start : start + BATCH_ROWS]))
                    .where(ChainIntentRow.status.in_((PENDING, SIGNED)))
                    .values(status=SENT, updated_at=_now())
                    .execution_options(synchronize_session=False)
                )

        if tx_hashes:
            await self.run(work)

    async def mark_mined(self, updates: Sequence[MinedUpdate]) -> None:
        def work(repo: ChainRepository) -> None:
            repo.update_intents(
                [
                    {
                        "key": item.intent_key,
                        "status": MINED,
                        "tx_hash": item.tx_hash,
                        "block_number": item.block_number,
                        "block_hash": item.block_hash,
                        "gas_used": item.gas_used,
                        "contract_address": item.contract_address,
                    }
                    for item in updates
                ]
            )
            repo.set_attempt_status((item.tx_hash for item in updates), ATTEMPT_MINED)

        if updates:
            await self.run(work)

    async def mark_unmined(self, keys: Sequence[str]) -> None:
        """A reorg took these intents' blocks away: back to sent, to be found again."""

        def work(repo: ChainRepository) -> None:
            for key in keys:
                repo.update_intent(key, status=SENT, block_number=None, block_hash=None)

        if keys:
            await self.run(work)

    async def finish(self, outcomes: Sequence[tuple[str, str, str | None]]) -> None:
        """(key, terminal status, error) triples; the other attempts of a finished intent become replaced."""

        def work(repo: ChainRepository) -> None:
            repo.update_intents([{"key": key, "status": status, "error": error} for key, status, error in outcomes])
            keys = [key for key, _, _ in outcomes]
            for start in range(0, len(keys), BATCH_ROWS):
                repo.session.execute(
                    update(ChainAttemptRow)
                    .where(
                        ChainAttemptRow.intent_key.in_(keys[start : start + BATCH_ROWS]),
                        ChainAttemptRow.status.in_((ATTEMPT_SIGNED, ATTEMPT_SENT)),
                    )
                    .values(status=ATTEMPT_REPLACED)
                    .execution_options(synchronize_session=False)
                )

        if outcomes:
            await self.run(work)

    async def reject(self, key: str, tx_hash: str | None, error: str) -> None:
        def work(repo: ChainRepository) -> None:
            if tx_hash is not None:
                repo.set_attempt_status([tx_hash], ATTEMPT_REJECTED)
            repo.update_intent(key, status=FAILED, error=error[:2000])

        await self.run(work)

    async def open_intents(self, chain_id: int, sender: str) -> list[IntentRecord]:
        return await self.run(lambda repo: repo.open_intents(chain_id, sender))

    async def max_nonce(self, chain_id: int, sender: str) -> int | None:
        return await self.run(lambda repo: repo.max_nonce(chain_id, sender))


def _alone(
    operation: Callable[[ChainRepository, list[Item]], list[T]], item: Item
) -> Callable[[ChainRepository], list[T]]:
    return lambda repo: operation(repo, [item])


def _record_signed(repo: ChainRepository, items: list[tuple[str, AttemptRecord, str | None, str | None]]) -> list[bool]:
    """Signed attempts of many intents: one locking read of their owners, one executemany of the intents' status
    and nonce, one multi-row insert of the attempts; an intent another owner holds now gets nothing written."""
    owners: dict[str, str | None] = {}
    for key, _, _, owner in items:
        owners[key] = owner
    held = repo.held_by(owners)
    written = [(key, attempt, replaces) for key, attempt, replaces, _ in items if key in held]
    repo.update_intents(
        [{"key": key, "status": SIGNED if replaces is None else SENT, "nonce": a.nonce} for key, a, replaces in written]
    )
    repo.add_attempts([(key, attempt) for key, attempt, _ in written])
    return [key in held for key, _, _, _ in items]
