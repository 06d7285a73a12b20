"""``ChainRepository``: reads and writes the chain layer's rows in the caller's session; never commits (the store's
unit of work does)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.chain_records import AttemptRecord, IntentRecord, intent_record
from store.chain_rows import (
    ATTEMPT_REJECTED,
    BATCH_ROWS,
    DROPPED,
    FAILED,
    OPEN_STATUSES,
    ChainAttemptRow,
    ChainBlockHashRow,
    ChainCheckpointRow,
    ChainIntentRow,
    ChainNonceGapRow,
    ChainNonceRow,
    ChainReorgRow,
    ChainSelectionRow,
    utc_now,
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
        return intent_record(row, attempts)

    def add_intent(self, record: IntentRecord) -> None:
        now = utc_now()
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
            update(ChainIntentRow).where(ChainIntentRow.key == key).values(updated_at=utc_now(), **values)
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

    def set_attempt_status(self, tx_hashes: Iterable[str], status: str, *, only_from: str | None = None) -> None:
        """The attempts' status; with ``only_from``, only of those whose status is that now."""
        hashes = list(tx_hashes)
        if hashes:
            where: list[ColumnElement[bool]] = [ChainAttemptRow.tx_hash.in_(hashes)]
            if only_from is not None:
                where.append(ChainAttemptRow.status == only_from)
            self.session.execute(update(ChainAttemptRow).where(*where).values(status=status))

    def open_intents(self, chain_id: int, sender: str) -> list[IntentRecord]:
        rows = self.session.scalars(
            select(ChainIntentRow).where(
                ChainIntentRow.chain_id == chain_id,
                ChainIntentRow.sender == sender,
                ChainIntentRow.status.in_(OPEN_STATUSES),
            )
        ).all()
        return self._with_attempts(rows)

    def open_keyed(self, prefix: str) -> list[IntentRecord]:
        """The open intents (pending, signed, sent, mined: not yet confirmed or ended) whose key starts with
        ``prefix``, read by the key's prefix (0039's index) and the status."""
        named = ChainIntentRow.key.startswith(prefix, autoescape=True)
        rows = self.session.scalars(select(ChainIntentRow).where(named, ChainIntentRow.status.in_(OPEN_STATUSES)))
        return self._with_attempts(rows)

    def latest_failed(self, chain_id: int, sender: str, after: datetime, limit: int = 20) -> list[IntentRecord]:
        """The sender's intents the node refused (``failed``) updated after ``after``, newest first, at most
        ``limit``."""
        rows = self.session.scalars(
            select(ChainIntentRow)
            .where(
                ChainIntentRow.chain_id == chain_id,
                ChainIntentRow.status == FAILED,
                ChainIntentRow.sender == sender,
                ChainIntentRow.updated_at > after,
            )
            .order_by(ChainIntentRow.updated_at.desc())
            .limit(limit)
        ).all()
        return self._with_attempts(rows)

    def intents(self, keys: Sequence[str]) -> list[IntentRecord]:
        if not keys:
            return []
        return self._with_attempts(self.session.scalars(select(ChainIntentRow).where(ChainIntentRow.key.in_(keys))))

    def numbered_intents(self, stem: str, unnumbered: str | None = None) -> list[tuple[int, IntentRecord]]:
        """The intents keyed ``<stem><n>`` (``n`` a number from 2; from 1 without ``unnumbered``), and the one keyed
        ``unnumbered`` as number 1, by number: every one stored, read by the key's prefix, not one key after the
        other up to the first missing. The numbers can have gaps — 0037 and 0038 rekeyed each attempt by the
        contract it was sent to, and the code before them sent a later attempt of an earlier deployment's loan to
        a later deployment, which holds that attempt and not the ones before it — and a gap is no end."""
        named = ChainIntentRow.key.startswith(stem, autoescape=True)
        if unnumbered is not None:
            named = or_(ChainIntentRow.key == unnumbered, named)
        numbered: list[tuple[int, IntentRecord]] = []
        for intent in self._with_attempts(self.session.scalars(select(ChainIntentRow).where(named))):
            suffix = intent.key.removeprefix(stem)
            if intent.key == unnumbered:
                numbered.append((1, intent))
            elif suffix.isascii() and suffix.isdigit() and int(suffix) >= (1 if unnumbered is None else 2):
                numbered.append((int(suffix), intent))
        return sorted(numbered, key=lambda pair: pair[0])

    def _with_attempts(self, rows: Iterable[ChainIntentRow]) -> list[IntentRecord]:
        rows = list(rows)
        if not rows:
            return []
        keys = [row.key for row in rows]
        attempts: dict[str, list[ChainAttemptRow]] = {}
        for attempt in self.session.scalars(select(ChainAttemptRow).where(ChainAttemptRow.intent_key.in_(keys))):
            attempts.setdefault(attempt.intent_key, []).append(attempt)
        return [intent_record(row, attempts.get(row.key, [])) for row in rows]

    # batches: one statement for many intents (the lifecycle's persistence is grouped per moment, not per
    # transaction)

    def add_intents(self, records: Sequence[IntentRecord], dialect: str) -> set[str]:
        """Insert the intents whose key is not stored yet; the keys inserted. One executemany of a statement compiled
        once and cached (SQLAlchemy's "insertmanyvalues" sends it as multi-row INSERTs with RETURNING), where one
        multi-row VALUES statement per batch was compiled anew for each batch size: half of a 500-intent batch's
        time."""
        if not records:
            return set()
        now = utc_now()
        table = cast(Table, ChainIntentRow.__table__)
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key)
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
            for r in records
        ]
        return {str(key) for key in self.session.execute(statement, rows).scalars()}

    def held_by(self, owners: Mapping[str, str | None]) -> set[str]:
        """Of ``owners``' keys, those whose intent is held by the owner given (any holder when None); the rows stay
        locked to the end of the transaction (PostgreSQL), so nobody claims them in between."""
        rows = self.session.execute(
            select(ChainIntentRow.key, ChainIntentRow.owner)
            .where(ChainIntentRow.key.in_(list(owners)))
            .with_for_update()
        ).all()
        return {str(key) for key, owner in rows if owners[str(key)] is None or owners[str(key)] == owner}

    def held_open(self, keys: Iterable[str], owner: str) -> set[str]:
        """Of ``keys``, the open intents ``owner`` holds; their rows stay locked to the end of the transaction
        (PostgreSQL), so nobody claims them before the caller's writes commit."""
        wanted = list(keys)
        held: set[str] = set()
        for start in range(0, len(wanted), BATCH_ROWS):
            held.update(
                self.session.scalars(
                    select(ChainIntentRow.key)
                    .where(
                        ChainIntentRow.key.in_(wanted[start : start + BATCH_ROWS]),
                        ChainIntentRow.owner == owner,
                        ChainIntentRow.status.in_(OPEN_STATUSES),
                    )
                    .with_for_update()
                )
            )
        return held

    def fail_held(self, key: str, owner: str, error: str) -> bool:
        """Intent ``key`` failed with ``error`` if ``owner`` holds it open, in one UPDATE whose condition is judged
        with the row written (a SELECT first locks nothing on SQLite, where a claim could come in between): whether it
        was written."""
        failed = self.session.execute(
            update(ChainIntentRow)
            .where(ChainIntentRow.key == key, ChainIntentRow.owner == owner, ChainIntentRow.status.in_(OPEN_STATUSES))
            .values(status=FAILED, error=error[:2000], updated_at=utc_now())
        )
        return bool(getattr(failed, "rowcount", 0) == 1)

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
        now = utc_now()
        columns = [c for c in values[0] if c != "key"]
        statement = (
            update(table)
            .where(table.c.key == bindparam("b_key"))
            .values(updated_at=now, **{c: bindparam(f"b_{c}") for c in columns})
        )
        self.session.connection().execute(statement, [{f"b_{c}": v for c, v in row.items()} for row in values])

    def add_attempts(self, attempts: Sequence[tuple[str, AttemptRecord]], take_over: Sequence[str] = ()) -> None:
        """The signed attempts, each under its intent. ``take_over``: the hashes of those that may repeat an attempt
        the node refused — a first attempt signed at a nonce given back (the same call with the same fees there), a
        fee bump signed again after the node refused it (the same bump while the market has not moved) — which are
        the same bytes and hash, and the hash is the table's key, so that row, of a transaction the node never took,
        is replaced (one more statement, only then)."""
        if not attempts:
            return
        table = cast(Table, ChainAttemptRow.__table__)
        if take_over:
            self.session.connection().execute(
                delete(table).where(table.c.tx_hash.in_(list(take_over)), table.c.status == ATTEMPT_REJECTED)
            )
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

    def open_leases(self) -> list[tuple[int, str, str | None, datetime | None]]:
        """(chain id, sender, owner, lease expiry) of every open intent (a read: which accounts' managers have
        something to ``claim``; open intents are the ones in flight, few)."""
        rows = self.session.execute(
            select(
                ChainIntentRow.chain_id, ChainIntentRow.sender, ChainIntentRow.owner, ChainIntentRow.lease_expires_at
            ).where(ChainIntentRow.status.in_(OPEN_STATUSES))
        )
        return [(int(chain_id), str(sender), owner, expires) for chain_id, sender, owner, expires in rows]

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
        """The highest nonce an intent of (chain, sender) holds. A failed intent's nonce was released (the node refused
        its transaction) and a dropped one's was used by another transaction: counting them floored the counter above
        a released nonce, which was then never handed out again — a gap no later transaction gets past."""
        value = self.session.scalar(
            select(func.max(ChainIntentRow.nonce)).where(
                ChainIntentRow.chain_id == chain_id,
                ChainIntentRow.sender == sender,
                ChainIntentRow.status.not_in((FAILED, DROPPED)),
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

    def nonce_counter(self, chain_id: int, address: str) -> int:
        """The account's next never-handed-out nonce (0 before its first allocation); a plain read."""
        row = self.session.get(ChainNonceRow, (chain_id, address))
        return 0 if row is None else row.next_nonce

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

    def gaps(self, chain_id: int, address: str) -> list[int]:
        """The released nonces, lowest first (left where they are)."""
        return [
            int(n)
            for n in self.session.scalars(
                select(ChainNonceGapRow.nonce)
                .where(ChainNonceGapRow.chain_id == chain_id, ChainNonceGapRow.address == address)
                .order_by(ChainNonceGapRow.nonce)
            )
        ]

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
                chain_id=chain_id, reader=reader, block_number=number, block_hash=block_hash, updated_at=utc_now()
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
                detected_at=utc_now(),
            )
        )

    def reorgs(self, chain_id: int) -> list[ChainReorgRow]:
        return list(self.session.scalars(select(ChainReorgRow).where(ChainReorgRow.chain_id == chain_id)).all())

    # selection

    def add_selection(self, operation: str, chosen: str | None, candidates: list[dict[str, Any]]) -> None:
        self.session.add(
            ChainSelectionRow(operation=operation, chosen=chosen, candidates=candidates, created_at=utc_now())
        )
