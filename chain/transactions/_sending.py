"""Preparing and sending: gas estimate, fees, nonce, signing, persisting the signed bytes, broadcasting, and
the nonce resync when the node says a fresh nonce is used."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from sqlalchemy.exc import SQLAlchemyError

from chain.errors import (
    ChainError,
    FeeCapExceeded,
    GasEstimationFailed,
    IntentNotHeld,
    RpcUnavailable,
    TransactionRejected,
)
from chain.fees import ALLOWANCE_EXCEEDED, NOT_THE_SENDERS_FUNDS, Fees
from chain.nonces import IntentExists, SqlNonceAllocator
from chain.transactions._core import _Core
from chain.transactions._tracked import _KNOWN, _NONCE_USED, _UNDERPRICED, _Broadcast, _hex, _TakenOver, _Tracked
from chain.transactions._values import Call, Submission
from chain.types import Nonce
from store.chain import ATTEMPT_REJECTED, ATTEMPT_SIGNED, AttemptRecord, IntentRecord, rejecting

log = logging.getLogger("chain.transactions")

#: the key prefix of the zero-value transfers that fill a nonce a failed intent gave back (``_fill_gap``)
GAP_FILLER = "nonce-gap:"

#: an intent's ``to`` checksummed once per address (a Keccak-256 each), not once per signature
_checksummed = lru_cache(maxsize=4096)(to_checksum_address)


class _Sending(_Core):
    """Prepare, sign, persist and broadcast one intent's transaction."""

    async def _prepare_and_send(self, intent: IntentRecord, *, create: bool = False) -> Submission:
        try:
            return await self._prepare_and_send_inner(intent, create)
        finally:
            self._submitting.pop(intent.key, None)

    async def _prepare_and_send_inner(self, intent: IntentRecord, create: bool) -> Submission:
        key = intent.key
        to = intent.to_address
        data = bytes(HexBytes(intent.data))
        try:
            gas = intent.gas if intent.gas is not None else await self._estimate_gas(to, data, intent.value)
            fees = await self._market_fees()
        except (GasEstimationFailed, FeeCapExceeded) as caught:
            err = _whose_limit(caught) if isinstance(caught, GasEstimationFailed) else caught
            if create:  # the intent is stored failed, as when it was created first
                _, created = await self.store.create_intent(intent)
                if not created:
                    raise IntentExists(f"intent {key!r} exists") from err
            # A resumed intent may hold a nonce bound before its process died, never signed: given back and filled
            if await self._fail(key, None, str(err), intent.nonce):
                self._settle(key, err)  # else taken over meanwhile: its new owner's outcome is in the store
                if intent.nonce is not None:
                    await self._fill_gap(intent.nonce, key)
            if err is caught:
                raise
            raise err from caught
        fresh = intent.nonce is None  # allocated here: no earlier attempt of ours can hold this nonce
        try:
            if fresh and isinstance(self.nonces, SqlNonceAllocator):
                new_intent = intent if create else None
                tracked = await self._allocate_signed(key, to, data, intent.value, gas, fees, new_intent)
            else:
                nonce = Nonce(intent.nonce) if intent.nonce is not None else await self._allocate(key)
                tracked = await self._sign_and_track(key, to, data, intent.value, nonce, gas, fees, fresh=fresh)
        except _TakenOver:
            return await self._taken_over_meanwhile(key)
        if self._on_signed is not None:
            await self._on_signed(key)
        outcome = await self._send(tracked)
        if outcome == _Broadcast.NONCE_USED and fresh and not await self._known_to_node(tracked):
            try:
                tracked, outcome = await self._resend_after_resync(tracked, gas, fees)
            except _TakenOver:
                return await self._taken_over_meanwhile(key)
        if outcome in (_Broadcast.REJECTED, _Broadcast.TAKEN_OVER):
            return await self._taken_over_meanwhile(key)
        self._wake.set()
        return Submission(key, "sent" if not tracked.unsent else "signed", tracked.current.tx_hash, tracked.nonce)

    async def _taken_over_meanwhile(self, key: str) -> Submission:
        """The submission of an intent this submit no longer drives: refused here — by this submit's broadcast, or
        by the watcher's broadcast of the same signed attempt first (its nonce then filled, so this submit's own send
        found the nonce used) — which the caller hears; else followed by another manager, whose outcome the store
        holds."""
        error = self._settled.get(key)
        if isinstance(error, ChainError):
            raise error
        log.warning("%s: intent %s was taken over by another manager before it was settled", self.client.name, key)
        stored = await self.store.get_intent(key)
        assert stored is not None
        return Submission(key, stored.status, stored.tx_hash, stored.nonce)

    async def _allocate(self, key: str) -> Nonce:
        """A new nonce for ``key``, bound only while this manager holds it (a binding allocator fences the bind)."""
        try:
            return await self.nonces.allocate(self.account, key, self.owner)
        except IntentNotHeld as err:  # stalled past the lease, claimed by another: no nonce was consumed
            raise _TakenOver(key) from err

    async def _allocate_signed(
        self, key: str, to: str | None, data: bytes, value: int, gas: int, fees: Fees, create: IntentRecord | None
    ) -> _Tracked:
        """A new nonce, the transaction signed under it and recorded as the intent's first attempt, in one unit of
        work of the SQL allocator (its binding, fenced by the owner, and the attempt's write together)."""
        assert isinstance(self.nonces, SqlNonceAllocator)
        try:
            nonce, attempt = await self.nonces.allocate_signed(
                self.account, key, self.owner, lambda nonce: self._sign(to, data, value, nonce, gas, fees), create
            )
        except IntentNotHeld as err:  # stalled past the lease, claimed by another: no nonce was consumed
            raise _TakenOver(key) from err
        tracked = _Tracked(key=key, to=to, data=data, value=value, nonce=nonce, attempts=[attempt])
        self._track(tracked)
        return tracked

    async def _sign_and_track(
        self, key: str, to: str | None, data: bytes, value: int, nonce: Nonce, gas: int, fees: Fees, *, fresh: bool
    ) -> _Tracked:
        attempt = self._sign(to, data, value, nonce, gas, fees)
        if not await self.store.record_signed(key, attempt, owner=self.owner):
            if fresh and not self.nonces.binds_intents:
                # The nonce was never bound (the refused write was its binding) and the intent's new owner took a
                # nonce of its own: hand this one out again rather than leave it unsent.
                await self.nonces.release(self.account, nonce)
            raise _TakenOver(key)
        tracked = _Tracked(key=key, to=to, data=data, value=value, nonce=nonce, attempts=[attempt])
        self._track(tracked)
        return tracked

    async def _known_to_node(self, tracked: _Tracked) -> bool:
        """Whether the node has one of our attempts, pending or mined. The watcher may broadcast an attempt before
        the submit does and a block may include it in between, so "nonce too low" on a fresh nonce proves a nonce
        used outside the platform only when the node knows none of our transactions under it."""
        for attempt in tracked.attempts:
            if await self._rpc("eth_getTransactionByHash", attempt.tx_hash):
                return True
        return False

    async def _resend_after_resync(self, stale: _Tracked, gas: int, fees: Fees) -> tuple[_Tracked, int]:
        """The node says the nonce just allocated is used: the key sent a transaction the platform did not. Floor
        the allocator at the chain's pending count and sign the intent again with a new nonce (once)."""
        self._recheck.discard(stale.key)  # nothing of ours can be mined under that nonce: not a drop to report
        self._untrack(stale)
        await self.store.run(lambda repo: repo.set_attempt_status([stale.current.tx_hash], ATTEMPT_REJECTED))
        chain_nonce = int(await self._rpc("eth_getTransactionCount", self.account.address, "pending"), 16)
        log.warning(
            "%s: nonce %s was used by a transaction the platform did not send; nonces resynced at %s",
            stale.key,
            stale.nonce,
            chain_nonce,
        )
        await self.nonces.floor(self.account, Nonce(chain_nonce))
        nonce = await self._allocate(stale.key)
        tracked = await self._sign_and_track(stale.key, stale.to, stale.data, stale.value, nonce, gas, fees, fresh=True)
        return tracked, await self._send(tracked)

    def _sign(self, to: str | None, data: bytes, value: int, nonce: int, gas: int, fees: Fees) -> AttemptRecord:
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.account.chain_id,
            "nonce": nonce,
            "gas": gas,
            "value": value,
            "data": data,
            **fees.as_params(),
        }
        if to is not None:
            tx["to"] = _checksummed(to)
        raw = self.signer.sign_transaction(tx)
        return AttemptRecord(
            tx_hash="0x" + keccak(raw).hex(),
            nonce=nonce,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            gas=gas,
            raw="0x" + raw.hex(),
            status="signed",
            created_at=datetime.now(UTC),
        )

    async def _send(self, tracked: _Tracked) -> int:
        """Broadcast the newest attempt and act on the answer."""
        attempt = tracked.current
        tracked.broadcasting = True
        try:
            await self._skip_idle_blocks()
            answer = await self._broadcasts.send(attempt.raw)  # in one batch request with the others ready now
        except RpcUnavailable as err:
            self.last_error = str(err)[:300]
            tracked.unsent = True
            return _Broadcast.UNAVAILABLE
        finally:
            tracked.broadcasting = False
        error = answer.get("error")
        if error is None:
            self._accepted(tracked)
            return _Broadcast.ACCEPTED
        message = str(error.get("message", error) if isinstance(error, dict) else error).lower()
        if any(token in message for token in _KNOWN):
            self._accepted(tracked)
            return _Broadcast.ACCEPTED
        if any(token in message for token in _NONCE_USED):
            # Either one of our attempts was mined (found by the receipt re-check) or someone else used the nonce.
            tracked.unsent = False
            tracked.nonce_used_seen = True
            self._recheck.add(tracked.key)
            return _Broadcast.NONCE_USED
        if attempt.tx_hash in tracked.accepted:
            return self._held(tracked, message)
        if len(tracked.attempts) > 1 and any(token in message for token in _UNDERPRICED):
            tracked.unsent = False  # an earlier attempt is still pending; bump again later
            if tracked.sent_at is None:  # resumed: the node holds a pricier one, whose bump's clock starts now
                tracked.accepted_at = tracked.sent_at = self._clock()
            return _Broadcast.UNDERPRICED
        if len(tracked.attempts) > 1:
            # A replacement was refused ("insufficient funds" for the bump of an account that could pay for the
            # original, say); the earlier attempt stands, bumped again after another ``stuck_after``. The refused one
            # is recorded rejected: the same bump signed again while the market has not moved is the same bytes and
            # hash, whose write takes its row over (it left the row signed, and that write failed every round).
            self.last_error = f"replacement of {tracked.key} refused: {message}"[:300]
            log.warning("%s: %s", self.client.name, self.last_error)
            tracked.attempts.pop()
            self._by_hash.pop(attempt.tx_hash, None)
            tracked.accepted_at = tracked.sent_at = self._clock()
            await self.store.run(
                lambda repo: repo.set_attempt_status([attempt.tx_hash], ATTEMPT_REJECTED, only_from=ATTEMPT_SIGNED)
            )
            return _Broadcast.UNDERPRICED
        try:
            held = await self._known_to_node(tracked)
        except RpcUnavailable as err:  # undecided: broadcast again by the watcher, whose answer decides
            self.last_error = str(err)[:300]
            tracked.unsent = True
            return _Broadcast.UNAVAILABLE
        if held:
            # A node holds it, pending or mined, though nobody recorded it accepted (its process died between the
            # node's answer and the store's write): the refusal ("insufficient funds" since the balance fell, say)
            # is no proof it never reached a mempool, and its nonce is not free.
            tracked.accepted.add(attempt.tx_hash)
            self._sent_queue.append((tracked.key, attempt.tx_hash))
            return self._held(tracked, message)
        if not await self._fail(tracked.key, attempt.tx_hash, message, tracked.nonce):
            log.warning("%s: refused %s was taken over by another manager", self.client.name, tracked.key)
            self._let_go(tracked)
            return _Broadcast.TAKEN_OVER
        rejected = TransactionRejected(f"{self.client.name} refused {tracked.key}: {message}", tracked.key)
        self._untrack(tracked)
        self._settle(tracked.key, rejected)
        await self._fill_gap(tracked.nonce, tracked.key)
        return _Broadcast.REJECTED

    async def _fill_gap(self, nonce: int, failed: str) -> None:
        """``nonce``, just given back by the intent ``failed``, holds back this account's later transactions (this
        manager's or another's, the allocator's counter says whether any was handed out) that the node queues behind
        it: send a zero-value transfer to the account itself in it now (the allocator hands out released nonces
        first), as a relayer cancels a nonce, rather than leave them waiting for the next submit (and fee-bumped for
        nothing meanwhile). Not when none is later: the next submit takes it. A filler that fails (the account cannot
        pay for its gas either) is not filled again."""
        if failed.startswith(GAP_FILLER):
            return
        if not any(t.nonce > nonce for t in self._tracked.values()):
            try:
                if await self.nonces.handed_out(self.account) <= nonce + 1:
                    return
            except (ChainError, SQLAlchemyError) as err:
                log.warning("%s: nonce %s given back by %s is not filled: %s", self.client.name, nonce, failed, err)
                return
        key = f"{GAP_FILLER}{self.account.chain_id}:{self.account.address}:{nonce}:{secrets.token_hex(4)}"
        filler = self._intent(key, Call.transfer(self.account.address, 0))
        sql = isinstance(self.nonces, SqlNonceAllocator)
        try:
            if not sql:
                await self.store.create_intent(filler)
            sent = await self._prepare_and_send(filler, create=sql)
        except (ChainError, SQLAlchemyError) as err:  # the refusal's caller hears its own error, not the filler's
            log.warning("%s: nonce %s given back by %s is not filled: %s", self.client.name, nonce, failed, err)
            return
        log.info(
            "%s: nonce %s given back by %s filled by %s (nonce %s)",
            self.client.name,
            nonce,
            failed,
            sent.intent_key,
            sent.nonce,
        )

    async def _fail(self, key: str, tx_hash: str | None, error: str, nonce: int | None) -> bool:
        """Store ``key`` failed and give its ``nonce`` back (None: it holds none) while this manager holds it: False,
        nothing written, once another manager took it over (its writes decide now). On the SQL allocator of this
        store the intent's write and the release are one unit of work."""
        write = rejecting(key, tx_hash, error, self.owner)
        if nonce is None:
            return await self.store.run(write)
        if isinstance(self.nonces, SqlNonceAllocator) and self.nonces.store is self.store:
            return await self.nonces.release_with(self.account, Nonce(nonce), write)
        if not await self.store.run(write):
            return False
        await self.nonces.release(self.account, Nonce(nonce))
        return True

    def _let_go(self, tracked: _Tracked) -> None:
        """Stop following an intent another manager owns now; its waiters read its outcome from the store."""
        self._untrack(tracked)
        self._recheck.discard(tracked.key)
        waiter = self._waiters.pop(tracked.key, None)
        if waiter is not None and not waiter.done():
            waiter.set_exception(_TakenOver(tracked.key))
            waiter.exception()  # mark retrieved: the waiter may have given up already

    def _held(self, tracked: _Tracked, message: str) -> int:
        """A rebroadcast of an attempt a node accepted before was refused ("max fee per gas less than block base
        fee" while it waits in the pool for the base fee to fall, a node that lost it and now finds the account short
        of funds …): it may still be mined, so it stays followed under its nonce, and only receipts and the account's
        nonce decide its end. Broadcast again after ``rebroadcast_after``; still unmined after ``stuck_after``, it is
        replaced with higher fees."""
        log.warning("rebroadcast of %s refused, still followed: %s", tracked.key, message)
        tracked.unsent = False
        tracked.accepted_at = self._clock()
        if tracked.sent_at is None:  # resumed: the fee bump's clock starts now
            tracked.sent_at = tracked.accepted_at
        return _Broadcast.HELD

    def _accepted(self, tracked: _Tracked) -> None:
        tracked.unsent = False
        tracked.nonce_used_seen = False  # not used after all: a "nonce too low" spoke of a block a reorg took back
        tracked.accepted.add(tracked.current.tx_hash)
        tracked.accepted_at = self._clock()
        if tracked.sent_at is None:
            tracked.sent_at = tracked.accepted_at
        self._sent_queue.append((tracked.key, tracked.current.tx_hash))

    async def _estimate_gas(self, to: str | None, data: bytes, value: int) -> int:
        # no fee: a node then caps the estimate by its gas limit, never by what the balance buys (``_whose_limit``)
        params: dict[str, Any] = {"from": self.account.address, "data": "0x" + data.hex(), "value": _hex(value)}
        if to is not None:
            params["to"] = to
        answer = await self.client.provider.make_request("eth_estimateGas", [params])  # type: ignore[arg-type]
        error = answer.get("error")
        if error is not None:
            revert_data = error.get("data") if isinstance(error, dict) else None
            decoded = self._decode(revert_data)
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            raise GasEstimationFailed(
                f"gas estimate failed on {self.client.name}: {message}" + (f" [{decoded}]" if decoded else ""),
                revert_data=revert_data if isinstance(revert_data, str) else None,
                decoded=decoded,
            )
        estimate = int(str(answer["result"]), 16)
        return self.settings.gas_limit(estimate)


def _whose_limit(err: GasEstimationFailed) -> GasEstimationFailed:
    """``err`` as it is stored and raised: a "gas required exceeds allowance" followed by whose limit it was — a node
    says it both of a sender whose balance cannot pay at the estimate's fee and of a call that needs more gas than
    the node allows, and our estimates carry no fee, so it is the second (``chain.fees.NOT_THE_SENDERS_FUNDS``) — so
    that a reader of the stored intent (the servicing jobs' attempt counting and back-off) never reads it as funds.
    Any other refusal as it stands."""
    message = str(err)
    if ALLOWANCE_EXCEEDED not in message.lower():
        return err
    return GasEstimationFailed(f"{message} ({NOT_THE_SENDERS_FUNDS})", revert_data=err.revert_data, decoded=err.decoded)
