"""``TransactionManager``: start, close, submit, wait (the lifecycle is described in ``chain.transactions``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from chain.errors import ChainError, ConfirmationTimeout, IntentConflict
from chain.nonces import IntentExists, SqlNonceAllocator
from chain.transactions._tracked import _TakenOver
from chain.transactions._values import Call, Receipt, Submission, _receipt_or_raise
from chain.transactions._watching import _Watching
from chain.types import Nonce
from store.chain import DROPPED, TERMINAL_STATUSES, IntentRecord

#: the payload hash of a barred intent (``bar``): no call hashes to it
BARRED_PAYLOAD = "0x" + "00" * 32


class TransactionManager(_Watching):
    """Sends and follows the transactions of one signer on one chain (see the module docstring).

    ``store`` persists intents and attempts; ``nonces`` defaults to the SQL allocator on the same store (within
    one process on SQLite, across processes on PostgreSQL); pass a ``RedisNonceAllocator`` to share through Redis.
    ``owner`` names this manager on the intents it owns (``default_owner()``: unique per instance).
    ``on_signed`` is a test seam called after an attempt is persisted and before it is broadcast."""

    async def start(self) -> TransactionManager:
        """Check the chain, floor the nonce counter at the chain's count, claim and resume the open intents no live
        manager owns, start watching, fill the released nonces a later transaction waits behind."""
        await self.client.connect()
        pending_count = int(await self._rpc("eth_getTransactionCount", self.account.address, "pending"), 16)
        persisted = await self.store.max_nonce(self.account.chain_id, self.account.address)
        # Within one process, the counter also goes above the nonces the store's intents hold; the released nonces
        # are dropped only below the chain's count, which has not passed one a later intent waits behind on the node
        # (released by a process that died before it filled it): dropped, it was never sent, nor anything after it.
        handed_out = None if self.nonces.cross_process else Nonce((persisted or -1) + 1)
        await self.nonces.floor(self.account, Nonce(pending_count), handed_out=handed_out)
        self._scanned = int(await self._rpc("eth_blockNumber"), 16)
        await self._claim_expired()
        self._renewed_at = self._clock()
        self._watcher = asyncio.create_task(self._watch(), name=f"tx-watcher-{self.client.name}")
        self._lease_keeper = asyncio.create_task(self._keep_leases(), name=f"tx-leases-{self.client.name}")
        if isinstance(self.nonces, SqlNonceAllocator):
            for nonce in await self.nonces.released(self.account):
                await self._fill_gap(nonce, "an earlier process")
        return self

    async def close(self) -> None:
        for background in (self._watcher, self._lease_keeper):
            if background is not None:
                background.cancel()
                await asyncio.gather(background, return_exceptions=True)
        self._watcher = self._lease_keeper = None
        for task in list(self._submitting.values()):
            task.cancel()
        await asyncio.gather(*self._submitting.values(), return_exceptions=True)
        await self._flush_sent()
        # Hand the open intents over now: another manager of this account claims them at its next round instead
        # of waiting for the lease to run out.
        await self.store.release_leases(self.account.chain_id, self.account.address, self.owner)

    async def __aenter__(self) -> TransactionManager:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def submit(self, intent_key: str, call: Call) -> Submission:
        """Persist the intent and send its transaction once; idempotent per key (see the module docstring).

        Raises GasEstimationFailed (nothing signed), TransactionRejected (the node refused it; nonce released),
        IntentConflict, FeeCapExceeded. An RPC outage after signing does not raise: the watcher re-broadcasts."""
        if intent_key in self._submitting:
            return await asyncio.shield(self._submitting[intent_key])
        record = self._intent(intent_key, call)
        if record.gas is not None and isinstance(self.nonces, SqlNonceAllocator):
            task = asyncio.create_task(self._submit_new(record))  # intent, nonce and signed attempt in one unit of work
            self._submitting[intent_key] = task
            return await asyncio.shield(task)
        stored, created = await self.store.create_intent(record)
        if stored.payload_hash != record.payload_hash:
            raise IntentConflict(intent_key)
        if not created:
            return await self._existing(stored)
        if intent_key in self._submitting:  # a concurrent submit of the same key got here first
            return await asyncio.shield(self._submitting[intent_key])
        task = asyncio.create_task(self._prepare_and_send(stored))
        self._submitting[intent_key] = task
        self._wake_when_done(task)
        return await asyncio.shield(task)

    async def _submit_new(self, record: IntentRecord) -> Submission:
        """``submit`` of an intent whose gas is known, on the SQL allocator: the intent is created in the unit of
        work that binds its nonce and records its signed attempt (``SqlNonceAllocator.allocate_signed``'s
        ``create``), one transaction where creating it first was one more. An intent stored under the key already is
        handled as ``submit`` handles one (a different call under it is an IntentConflict)."""
        try:
            return await self._prepare_and_send(record, create=True)  # which leaves ``_submitting`` when it ends
        except IntentExists:
            stored = await self.store.get_intent(record.key)
            assert stored is not None
            if stored.payload_hash != record.payload_hash:
                raise IntentConflict(record.key) from None
            return await self._existing(stored)

    async def bar(self, intent_key: str, to: str | None, reason: str) -> bool:
        """Store ``intent_key`` as a dropped intent unless it exists (one insert-if-absent): True when barred —
        nothing of it was sent, and a later ``submit`` of the key (by a process still alive that lost it) is refused
        with IntentConflict, no call hashing to ``BARRED_PAYLOAD`` — False when the intent exists (it may be
        mined)."""
        barred = IntentRecord(
            key=intent_key,
            chain_id=self.account.chain_id,
            sender=self.account.address,
            to_address=to,
            data="0x",
            value=0,
            gas=None,
            payload_hash=BARRED_PAYLOAD,
            status=DROPPED,
            error=reason,
        )
        _, created = await self.store.create_intent(barred)
        return created

    async def _existing(self, stored: IntentRecord) -> Submission:
        if stored.status in TERMINAL_STATUSES or stored.chain_id != self.account.chain_id:
            return Submission(stored.key, stored.status, stored.tx_hash, stored.nonce)
        if stored.key in self._submitting:
            return await asyncio.shield(self._submitting[stored.key])
        if (
            stored.key not in self._tracked
            and stored.sender == self.account.address
            and not stored.owned_elsewhere(self.owner, datetime.now(UTC))
            and await self._take_over(stored.key)  # e.g. submitted by a process that died
            and stored.key in self._submitting
        ):
            return await asyncio.shield(self._submitting[stored.key])
        tracked = self._tracked.get(stored.key)
        if tracked is not None:
            return Submission(stored.key, stored.status, tracked.current.tx_hash, tracked.nonce)
        return Submission(stored.key, stored.status, stored.tx_hash, stored.nonce)

    async def wait(self, intent_key: str, within: float | None = None) -> Receipt:
        """Wait until ``intent_key`` is confirmed; raises TransactionReverted, TransactionRejected,
        TransactionDropped, or ConfirmationTimeout (the intent stays tracked)."""
        try:
            async with asyncio.timeout(within):
                while True:
                    settled = self._settled.get(intent_key)
                    if settled is not None:
                        if isinstance(settled, ChainError):
                            raise settled
                        return settled
                    if intent_key in self._submitting:
                        await asyncio.shield(self._submitting[intent_key])
                        continue
                    if intent_key in self._tracked:
                        waiter = self._waiters.setdefault(intent_key, asyncio.get_running_loop().create_future())
                        try:
                            return await asyncio.shield(waiter)
                        except _TakenOver:
                            continue  # followed by another manager now: read its outcome from the store
                    stored = await self.store.get_intent(intent_key)
                    if stored is None:
                        raise ChainError(f"no intent {intent_key!r}")
                    if stored.status in TERMINAL_STATUSES:
                        return _receipt_or_raise(stored)
                    if (
                        stored.sender == self.account.address
                        and stored.chain_id == self.account.chain_id
                        and not stored.owned_elsewhere(self.owner, datetime.now(UTC))
                        and await self._take_over(intent_key)
                    ):
                        continue
                    # another signer's intent, or one a live manager owns: its outcome will be in the store
                    await asyncio.sleep(max(self.settings.poll_interval, min(1.0, self.settings.claim_after / 10)))
        except TimeoutError:
            raise ConfirmationTimeout(intent_key, within or 0.0, self._state_of(intent_key)) from None

    def _state_of(self, intent_key: str) -> str:
        """Where this manager is with ``intent_key``, for a timeout's message."""
        watcher = "" if self._watcher is not None and not self._watcher.done() else "; the watcher is not running"
        tracked = self._tracked.get(intent_key)
        if tracked is None:
            where = "being submitted" if intent_key in self._submitting else "not followed by this manager"
            return where + watcher
        now = self._clock()
        if tracked.unsent:
            sent = "not yet accepted by a node"
        elif tracked.accepted_at is not None:
            sent = f"accepted by the node {now - tracked.accepted_at:.1f} s ago"
        else:
            sent = "refused as a used nonce" if tracked.nonce_used_seen else "sent"
        mined = tracked.mined
        found = f"mined in block {mined.block_number}" if mined is not None else f"not in blocks up to {self._scanned}"
        parts = [
            f"still tracked: nonce {tracked.nonce}",
            f"{len(tracked.attempts)} attempt(s), the newest {tracked.current.tx_hash}",
            sent + (", being broadcast" if tracked.broadcasting else ""),
            found,
        ]
        if intent_key in self._recheck:
            parts.append("its receipt to be asked for")
        if self.last_error:
            parts.append(f"last error: {self.last_error}")
        return ", ".join(parts) + watcher

    async def submit_and_wait(self, intent_key: str, call: Call, within: float | None = None) -> Receipt:
        await self.submit(intent_key, call)
        return await self.wait(intent_key, within)

    @property
    def in_flight(self) -> int:
        return len(self._tracked) + len(self._submitting)
