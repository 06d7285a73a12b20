"""The watcher: broadcast what is unsent, find mined transactions per block, confirm at depth (or send back on
a reorg), replace the stuck ones with a fee bump."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from eth_utils.address import to_checksum_address
from sqlalchemy.exc import SQLAlchemyError

from chain.errors import ChainError, FeeCapExceeded, TransactionDropped, TransactionReverted
from chain.fees import Fees, replacement_fees
from chain.transactions._owning import _Owning
from chain.transactions._tracked import _hex, _Round, _Tracked
from chain.transactions._values import _receipt
from chain.waiting import wait_at_most
from store.chain import CONFIRMED, DROPPED, REVERTED, MinedUpdate

log = logging.getLogger("chain.transactions")

#: the watcher's sleep while its manager follows nothing (woken at once by a submission's end or a claim): fifteen
#: idle managers a process (five roles on three chains) ticking every ``poll_interval`` were ~60 wake-ups a second
IDLE_WATCH_SECONDS = 5.0


class _Watching(_Owning):
    """The watcher task of one manager: one tick every ``poll_interval`` or when woken (every
    ``IDLE_WATCH_SECONDS`` while it follows nothing)."""

    async def _watch(self) -> None:
        while True:
            try:
                await self._tick()
            except ChainError as err:
                self.last_error = str(err)[:300]
                log.warning("transaction watcher on %s: %s", self.client.name, err)
            except Exception as err:  # the watcher must outlive any one bad tick; the error is logged with its trace
                self.last_error = f"{type(err).__name__}: {err}"[:300]
                log.exception("transaction watcher on %s failed a tick", self.client.name)
            # nothing followed, nothing being sent: sleep until a submission or a claim wakes the watcher
            busy = self._tracked or self._submitting or self._sent_queue
            await wait_at_most(self._wake.wait(), self.settings.poll_interval if busy else IDLE_WATCH_SECONDS)
            self._wake.clear()

    async def _tick(self) -> None:
        """One round. What it learns (sent, mined, unmined, finished) is written in one unit of work before any waiter
        hears an outcome (``_write_round``); a replacement's broadcast is written at the end."""
        if not self._tracked:
            await self._flush_sent()
            return
        await self._skip_idle_blocks()
        head = int(await self._rpc("eth_blockNumber"), 16)
        await self._broadcast_unsent()
        # a round that failed before its write is carried on by the next (what it learned is not learned again)
        round_ = self._round = self._round or _Round()
        round_.scanned.clear()  # blocks read by an earlier, failed round are asked for again
        try:
            await self._scan(head, round_)
            self._recheck_receipts_into(round_, await self._recheck_receipts(head))
            await self._confirm(head, round_)
        except Exception:
            await self._write_round(round_)  # what was decided before the failure
            raise
        await self._write_round(round_)
        await self._replace_stuck()
        await self._flush_sent()

    async def _flush_sent(self) -> None:
        queue, self._sent_queue = self._sent_queue, []
        if queue:
            await self.store.mark_sent(queue)

    async def _write_round(self, round_: _Round) -> None:
        """The round's findings in one unit of work, then its outcomes told to their waiters; a round whose write
        failed is kept for the next (``self._round``), the queued sends put back."""
        sent, self._sent_queue = self._sent_queue, []
        try:
            lost = await self.store.record_round(sent, round_.mined, round_.unmined, round_.outcomes, owner=self.owner)
        except BaseException:
            self._sent_queue[:0] = sent
            raise
        self._round = None
        for key in lost:  # claimed by another manager while this one stalled: its findings are not this one's to write
            tracked = self._tracked.get(key)
            if tracked is not None:
                log.warning("%s: intent %s was taken over by another manager", self.client.name, key)
                self._let_go(tracked)
        for tracked, result in round_.settled:
            if tracked.key not in lost:
                self._untrack(tracked)
                self._settle(tracked.key, result)

    async def _broadcast_unsent(self) -> None:
        now = self._clock()
        due = [
            t
            for t in self._tracked.values()
            if t.mined is None
            and not t.broadcasting
            and (t.unsent or (t.accepted_at is not None and now - t.accepted_at > self.settings.rebroadcast_after))
        ]
        # together, in nonce order: one batch request (chain.transactions._broadcasts)
        await asyncio.gather(*(self._send(tracked) for tracked in sorted(due, key=lambda t: t.nonce)))

    async def _scan(self, head: int, round_: _Round) -> None:
        """Find our transactions in the blocks since the last scan, one receipts call per block."""
        if all(t.mined is not None for t in self._tracked.values()):
            self._scanned = head
            return
        found: list[MinedUpdate] = []
        for number in range(self._scanned + 1, head + 1):
            receipts = await self._rpc("eth_getBlockReceipts", _hex(number))
            if receipts is None:  # a node behind the one that gave the head: read the block again next round
                break
            for receipt in receipts:
                key = self._by_hash.get(str(receipt["transactionHash"]))
                if key is not None and key in self._tracked:
                    found.append(self._mined(key, receipt))
            self._scanned = number
            round_.scanned[number] = next((str(r["blockHash"]) for r in receipts), "")
        self._record_mined(found, round_)

    def _mined(self, key: str, receipt: dict[str, Any]) -> MinedUpdate:
        contract = receipt.get("contractAddress")
        return MinedUpdate(
            intent_key=key,
            tx_hash=str(receipt["transactionHash"]),
            block_number=int(receipt["blockNumber"], 16),
            block_hash=str(receipt["blockHash"]),
            gas_used=int(receipt["gasUsed"], 16),
            contract_address=to_checksum_address(contract) if contract else None,
            success=int(receipt["status"], 16) == 1,
            logs=tuple(receipt.get("logs") or ()),
        )

    def _record_mined(self, found: Sequence[MinedUpdate], round_: _Round) -> None:
        """Known in memory now, written with the round (``_write_round``)."""
        round_.mined.extend(found)
        for update in found:
            tracked = self._tracked[update.intent_key]
            tracked.mined = update
            tracked.unsent = False
            self._recheck.discard(update.intent_key)

    async def _recheck_receipts(self, head: int) -> tuple[list[MinedUpdate], list[_Tracked]]:
        """Resumed, reorged and nonce-taken intents: ask for each attempt's receipt directly. The mined found, and
        the intents whose nonce another transaction took (``_nonce_taken``)."""
        found: list[MinedUpdate] = []
        dropped: list[_Tracked] = []
        counts: dict[int, int] = {}
        for key in list(self._recheck):
            tracked = self._tracked.get(key)
            if tracked is None or tracked.mined is not None:
                self._recheck.discard(key)
                continue
            for attempt in tracked.attempts:
                receipt = await self._rpc("eth_getTransactionReceipt", attempt.tx_hash)
                if receipt:
                    found.append(self._mined(key, receipt))
                    break
            else:
                if tracked.nonce_used_seen and await self._nonce_taken(tracked, head, counts):
                    dropped.append(tracked)
                continue
        return found, dropped

    async def _nonce_taken(self, tracked: _Tracked, head: int, counts: dict[int, int]) -> bool:
        """Whether the nonce a node called used ("nonce too low") is another transaction's: the account's count is
        past it at the block ``confirmations`` deep under ``head`` (read before the receipts were asked for, so none
        of our attempts is mined in those blocks). Not yet: the answer may have spoken of a block a reorg took back,
        with our transaction pending again — it stays followed, and its next accepted broadcast clears the flag."""
        block = max(0, head - max(1, self.settings.confirmations) + 1)
        if block not in counts:
            counts[block] = int(await self._rpc("eth_getTransactionCount", self.account.address, _hex(block)), 16)
        return counts[block] > tracked.nonce

    def _recheck_receipts_into(self, round_: _Round, rechecked: tuple[list[MinedUpdate], list[_Tracked]]) -> None:
        found, dropped = rechecked
        self._record_mined(found, round_)
        for tracked in dropped:
            self._recheck.discard(tracked.key)
            round_.outcomes.append((tracked.key, DROPPED, "nonce used by another transaction"))
            error = TransactionDropped(f"{tracked.key}: nonce {tracked.nonce} taken", tracked.key)
            round_.settled.append((tracked, error))

    async def _confirm(self, head: int, round_: _Round) -> None:
        depth = max(1, self.settings.confirmations)
        ripe = [t for t in self._tracked.values() if t.mined is not None and head - t.mined.block_number + 1 >= depth]
        if not ripe:
            return
        # a block whose receipts this round read by number is the chain's at that number as of this round: its hash
        # is not asked for again (at depth 1, every block the round confirms)
        canonical: dict[int, str] = {number: hash_ for number, hash_ in round_.scanned.items() if hash_}
        decided = {key for key, _, _ in round_.outcomes}
        for tracked in ripe:
            mined = tracked.mined
            assert mined is not None
            if tracked.key in decided:  # by this round before a failure: its write is still to come
                continue
            if mined.block_number not in canonical:
                block = await self._rpc("eth_getBlockByNumber", _hex(mined.block_number), False)
                canonical[mined.block_number] = str(block["hash"]) if block else ""
            if canonical[mined.block_number] != mined.block_hash:
                tracked.mined = None
                tracked.nonce_used_seen = False  # a "nonce too low" heard while it was mined spoke of that block
                round_.unmined.append(tracked.key)
                continue
            receipt = _receipt(self.account.chain_id, tracked.nonce, mined)
            if mined.success:
                round_.outcomes.append((tracked.key, CONFIRMED, None))
                round_.settled.append((tracked, receipt))
            else:
                error = await self._revert_error(tracked, mined)
                round_.outcomes.append((tracked.key, REVERTED, str(error)))
                round_.settled.append((tracked, error))
        self._recheck.update(round_.unmined)

    async def _revert_error(self, tracked: _Tracked, mined: MinedUpdate) -> TransactionReverted:
        """Replay the call in the block's parent state to learn the custom error (best effort)."""
        params: dict[str, Any] = {"from": self.account.address, "data": "0x" + tracked.data.hex()}
        if tracked.to is not None:
            params["to"] = tracked.to
        params["value"] = _hex(tracked.value)
        answer = await self.client.provider.make_request(
            "eth_call",  # type: ignore[arg-type]
            [params, _hex(max(0, mined.block_number - 1))],
        )
        error = answer.get("error")
        revert_data = error.get("data") if isinstance(error, dict) else None
        decoded = self._decode(revert_data)
        return TransactionReverted(
            f"{tracked.key} reverted in block {mined.block_number}" + (f": {decoded}" if decoded else ""),
            tx_hash=mined.tx_hash,
            revert_data=revert_data if isinstance(revert_data, str) else None,
        )

    async def _replace_stuck(self) -> None:
        now = self._clock()
        stuck = [
            t
            for t in self._tracked.values()
            if t.mined is None
            and not t.unsent
            and t.sent_at is not None
            and now - t.sent_at > self.settings.stuck_after
        ]
        if not stuck:
            return
        # One above the node's pending count waits behind a nonce the node has not got (given back by a refused
        # intent and not yet filled, another process's not yet sent): a higher fee cannot get it mined. Asked again
        # each round while it is stuck: the lower ones of a fee spike are bumped one after the other, not together.
        pending = int(await self._rpc("eth_getTransactionCount", self.account.address, "pending"), 16)
        for tracked in stuck:
            if tracked.nonce > pending and tracked.waits_behind != pending:
                log.warning(
                    "%s: %s (nonce %s) waits behind nonce %s", self.client.name, tracked.key, tracked.nonce, pending
                )
            tracked.waits_behind = pending if tracked.nonce > pending else None
        stuck = [t for t in stuck if t.waits_behind is None]
        if not stuck:
            return
        self._fees = None  # replacements price against the market now
        try:
            market = await self._market_fees()
        except FeeCapExceeded as err:  # the base fee above the cap: no bump now, nor for another stuck_after
            self.last_error = f"cannot replace stuck transactions: {err}"[:300]
            log.warning("%s: %s", self.client.name, self.last_error)
            for tracked in stuck:
                tracked.sent_at = now
            return
        for tracked in sorted(stuck, key=lambda t: t.nonce):
            try:
                await self._replace(tracked, market, now)
            except (ChainError, SQLAlchemyError) as err:  # this intent's failure: the others are replaced all the same
                self.last_error = f"replacing {tracked.key}: {type(err).__name__}: {err}"[:300]
                log.warning("%s: %s", self.client.name, self.last_error)
                tracked.sent_at = now  # tried again after another stuck_after

    async def _replace(self, tracked: _Tracked, market: Fees, now: float) -> None:
        """Sign, record and broadcast a fee bump of the stuck ``tracked``."""
        try:
            fees = replacement_fees(tracked.fees, market, self.fee_policy)
        except FeeCapExceeded as err:
            log.warning("cannot replace %s: %s", tracked.key, err)
            tracked.sent_at = now  # tried again after another stuck_after
            return
        attempt = self._sign(tracked.to, tracked.data, tracked.value, tracked.nonce, tracked.current.gas, fees)
        if not await self.store.record_signed(tracked.key, attempt, replaces=tracked.current.tx_hash, owner=self.owner):
            log.warning("%s: stuck %s was taken over by another manager", self.client.name, tracked.key)
            self._let_go(tracked)
            return
        stuck_since, tracked.sent_at = tracked.sent_at, None  # the replacement's clock starts when it is accepted
        tracked.attempts.append(attempt)
        self._by_hash[attempt.tx_hash] = tracked.key
        log.info("replacing stuck %s at nonce %s with %s", tracked.key, tracked.nonce, attempt.tx_hash)
        try:
            await self._send(tracked)
        finally:
            if tracked.sent_at is None:  # not accepted (underpriced, node away): still stuck since then
                tracked.sent_at = stuck_since
