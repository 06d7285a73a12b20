"""Persistence owned by ``chain/``: transaction intents and their signed attempts, nonce counters and released
nonces per (chain, account), event-reader checkpoints with the block hashes they were read at, reorg reports, and
chain-selection decisions.

``ChainRepository`` takes a Session and never commits; ``SqlChainStore`` is the adapter the chain layer calls: it
opens one unit of work per operation in a worker thread (the event loop never blocks on the database) and commits.
On SQLite (the local default) the nonce counter is correct within one process only; PostgreSQL row locks
(``SELECT … FOR UPDATE``) make it hold across processes.

Layout, each name re-exported here: ``chain_rows`` (the tables and statuses), ``chain_records`` (the plain records
crossing this boundary), ``chain_repository`` (``ChainRepository``), ``chain_batches`` (units of work off the event
loop and the group commit, ``run_batched``), and this module (``SqlChainStore``'s operations)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, update

from store.chain_batches import UnitsOfWork, record_signed_batch
from store.chain_records import AttemptRecord, IntentRecord, MinedUpdate
from store.chain_repository import ChainRepository
from store.chain_rows import (
    ATTEMPT_MINED,
    ATTEMPT_REJECTED,
    ATTEMPT_REPLACED,
    ATTEMPT_SENT,
    ATTEMPT_SIGNED,
    AUTO_ID,
    BATCH_ROWS,
    CHAIN_TABLES,
    CONFIRMED,
    DROPPED,
    FAILED,
    MINED,
    OPEN_STATUSES,
    PENDING,
    REVERTED,
    SENT,
    SIGNED,
    TERMINAL_STATUSES,
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

__all__ = [
    "ATTEMPT_MINED",
    "ATTEMPT_REJECTED",
    "ATTEMPT_REPLACED",
    "ATTEMPT_SENT",
    "ATTEMPT_SIGNED",
    "AUTO_ID",
    "BATCH_ROWS",
    "CHAIN_TABLES",
    "CONFIRMED",
    "DROPPED",
    "FAILED",
    "MINED",
    "OPEN_STATUSES",
    "PENDING",
    "REVERTED",
    "SENT",
    "SIGNED",
    "TERMINAL_STATUSES",
    "AttemptRecord",
    "ChainAttemptRow",
    "ChainBlockHashRow",
    "ChainCheckpointRow",
    "ChainIntentRow",
    "ChainNonceGapRow",
    "ChainNonceRow",
    "ChainReorgRow",
    "ChainRepository",
    "ChainSelectionRow",
    "IntentRecord",
    "MinedUpdate",
    "SqlChainStore",
    "rejecting",
]


class SqlChainStore(UnitsOfWork):
    """The chain layer's store on SQLAlchemy: each method is one unit of work, run in a worker thread."""

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
            now = utc_now()
            if not repo.claim(ChainIntentRow.key == key, owner, now, now + ttl):
                return None
            return repo.get_intent(key)

        return await self.run(work)

    async def claim_expired(self, chain_id: int, sender: str, owner: str, ttl: timedelta) -> list[IntentRecord]:
        """Take over every open intent of (chain, sender) that nobody holds a live lease on; the intents claimed."""

        def work(repo: ChainRepository) -> list[IntentRecord]:
            now = utc_now()
            mine = and_(ChainIntentRow.chain_id == chain_id, ChainIntentRow.sender == sender)
            keys = repo.claim(mine, owner, now, now + ttl)
            return repo.intents(keys)

        return await self.run(work)

    async def open_leases(self) -> tuple[datetime, list[tuple[int, str, str | None, datetime | None]]]:
        """The time of the read and (chain id, sender, owner, lease expiry) of every open intent: one read tells
        every manager of a process whether its ``claim_expired`` would find anything (chain.transactions._claims)."""

        def work(repo: ChainRepository) -> tuple[datetime, list[tuple[int, str, str | None, datetime | None]]]:
            return utc_now(), repo.open_leases()

        return await self.run(work)

    async def renew_leases(self, chain_id: int, sender: str, owner: str, ttl: timedelta) -> set[str]:
        """Extend ``owner``'s leases on its open intents of (chain, sender) in one statement; the keys it still
        holds (an intent missing from them was taken over after its lease expired)."""
        return await self.run(lambda repo: repo.renew(chain_id, sender, owner, utc_now() + ttl))

    async def release_leases(self, chain_id: int, sender: str, owner: str) -> None:
        """``owner`` stops following its open intents of (chain, sender): their leases expire now, so another
        manager claims them at its next round (a manager closing; a dead one's expire by themselves)."""
        await self.run(lambda repo: repo.renew(chain_id, sender, owner, utc_now() - timedelta(seconds=1)))

    async def record_signed(
        self, key: str, attempt: AttemptRecord, *, replaces: str | None = None, owner: str | None = None
    ) -> bool:
        """Persist a signed attempt (before it is broadcast). With ``owner``, only while ``owner`` holds the intent:
        False (nothing written) once another manager took it over, so a stalled owner never adds a second
        transaction to an intent its successor follows. Batched with the other attempts signed at the same moment."""
        return await self.run_batched(record_signed_batch, (key, attempt, replaces, owner))

    async def mark_sent(self, tx_hashes: Sequence[tuple[str, str]]) -> None:
        """(intent key, tx hash) pairs whose transaction a node accepted."""
        if tx_hashes:
            await self.run(lambda repo: _sent(repo, tx_hashes))

    async def record_round(
        self,
        sent: Sequence[tuple[str, str]],
        mined: Sequence[MinedUpdate],
        unmined: Sequence[str],
        outcomes: Sequence[tuple[str, str, str | None]],
        *,
        owner: str,
    ) -> set[str]:
        """What one round of a watcher saw, in one unit of work and in this order: the (intent key, tx hash) pairs a
        node accepted (as ``mark_sent``), the intents' blocks (``mined``), the intents a reorg took back to sent
        (``unmined``), and the (key, terminal status, error) triples that ended (the other attempts of an ended
        intent become replaced). An intent mined and ended in the same round is written once, its block and outcome
        together. The blocks and outcomes are written only for the open intents ``owner`` holds (row-locked first, as
        ``record_signed`` fences its writes): the keys left unwritten are returned — taken over by another manager,
        whose word on them stands, where a stalled former owner's round wrote over it."""

        def work(repo: ChainRepository) -> set[str]:
            keys = {item.intent_key for item in mined} | set(unmined) | {key for key, _, _ in outcomes}
            held = repo.held_open(keys, owner)
            ended = {key: (status, error) for key, status, error in outcomes if key in held}
            _sent(repo, sent)
            _mined(repo, [item for item in mined if item.intent_key in held], ended)
            _unmined(repo, [key for key in unmined if key in held])
            _finished(repo, [o for o in outcomes if o[0] in held], {item.intent_key for item in mined})
            return keys - held

        if sent or mined or unmined or outcomes:
            return await self.run(work)
        return set()

    async def reject(self, key: str, tx_hash: str | None, error: str, *, owner: str) -> bool:
        """Fail the open intent ``key`` (its attempt ``tx_hash`` rejected) while ``owner`` holds it; False, nothing
        written, once another manager took it over or it ended (``rejecting``)."""
        return await self.run(rejecting(key, tx_hash, error, owner))

    async def attempts(self, first: str) -> list[tuple[int, IntentRecord]]:
        """Every stored attempt of an intent sent one intent per attempt, by number: the first keyed ``first``, the
        n-th ``<first>:<n>`` (``ChainRepository.numbered_intents``: a missing number is no end)."""
        return await self.run(lambda repo: repo.numbered_intents(f"{first}:", first))

    async def numbered_intents(self, stem: str) -> list[tuple[int, IntentRecord]]:
        """The intents keyed ``<stem><n>`` by number (``ChainRepository.numbered_intents``)."""
        return await self.run(lambda repo: repo.numbered_intents(stem))

    async def open_intents(self, chain_id: int, sender: str) -> list[IntentRecord]:
        return await self.run(lambda repo: repo.open_intents(chain_id, sender))

    async def open_keyed(self, prefix: str) -> list[IntentRecord]:
        """The open intents whose key starts with ``prefix`` (``ChainRepository.open_keyed``): a relayer's
        repayments still on their way, say (``aggregator.repaying.repayment_under_way``)."""
        return await self.run(lambda repo: repo.open_keyed(prefix))

    async def max_nonce(self, chain_id: int, sender: str) -> int | None:
        return await self.run(lambda repo: repo.max_nonce(chain_id, sender))


def rejecting(key: str, tx_hash: str | None, error: str, owner: str) -> Callable[[ChainRepository], bool]:
    """The unit of work that fails the open intent ``key`` for ``error``, its attempt ``tx_hash`` rejected, only while
    ``owner`` holds it (judged by the UPDATE itself): True when written. A stalled former owner whose node refused, or
    whose gas estimate failed, after another manager claimed the intent wrote it failed over the new owner's
    transaction. ``SqlNonceAllocator.release_with`` runs it with the release of the intent's nonce."""

    def work(repo: ChainRepository) -> bool:
        if not repo.fail_held(key, owner, error):
            return False
        if tx_hash is not None:
            repo.set_attempt_status([tx_hash], ATTEMPT_REJECTED)
        return True

    return work


def _sent(repo: ChainRepository, tx_hashes: Sequence[tuple[str, str]]) -> None:
    repo.set_attempt_status((h for _, h in tx_hashes), ATTEMPT_SENT)
    keys = list({key for key, _ in tx_hashes})
    for start in range(0, len(keys), BATCH_ROWS):
        repo.session.execute(
            update(ChainIntentRow)
            .where(ChainIntentRow.key.in_(keys[start : start + BATCH_ROWS]))
            .where(ChainIntentRow.status.in_((PENDING, SIGNED)))
            .values(status=SENT, updated_at=utc_now())
            .execution_options(synchronize_session=False)
        )


def _mined(repo: ChainRepository, updates: Sequence[MinedUpdate], ended: Mapping[str, tuple[str, str | None]]) -> None:
    """The intents' blocks; one that ``ended`` names gets its outcome in the same row update."""
    rows: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for item in updates:
        row: dict[str, Any] = {
            "key": item.intent_key,
            "status": MINED,
            "tx_hash": item.tx_hash,
            "block_number": item.block_number,
            "block_hash": item.block_hash,
            "gas_used": item.gas_used,
            "contract_address": item.contract_address,
        }
        outcome = ended.get(item.intent_key)
        if outcome is not None:
            row["status"], row["error"] = outcome
        rows[outcome is not None].append(row)
    for group in rows.values():  # one executemany per set of columns
        repo.update_intents(group)
    repo.set_attempt_status((item.tx_hash for item in updates), ATTEMPT_MINED)


def _unmined(repo: ChainRepository, keys: Sequence[str]) -> None:
    for key in keys:
        repo.update_intent(key, status=SENT, block_number=None, block_hash=None)


def _finished(repo: ChainRepository, outcomes: Sequence[tuple[str, str, str | None]], written: Set[str]) -> None:
    """The intents' terminal statuses (but for those in ``written``, whose row update carried it already); the
    other attempts of a finished intent become replaced."""
    repo.update_intents(
        [{"key": key, "status": status, "error": error} for key, status, error in outcomes if key not in written]
    )
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
