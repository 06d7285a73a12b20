"""The transaction lifecycle: every transaction the platform sends goes through ``TransactionManager``.

    intent persisted (pending) → nonce bound → signed and persisted (hash known) → sent → mined
        → confirmed after N blocks, or reverted / failed (rejected by the node) / dropped

* ``submit(intent_key, call)`` is idempotent: the key stands for one transaction. A second submit with the same
  call returns the first one's state; with another call it raises IntentConflict.
* Nothing is signed before its intent is persisted, and nothing is sent before the signed bytes are persisted,
  so a restart at any point resumes from the store: it re-broadcasts the same signed bytes (same hash) and never
  signs a second transaction with another nonce for one intent.
* Fees are EIP-1559, from ``eth_feeHistory`` within the chain's ``FeePolicy``. A transaction not mined
  ``stuck_after`` seconds after it was sent is replaced at the same nonce with both fees raised by ≥ 12.5 %;
  whichever of the attempts is mined settles the intent.
* Mined transactions are found per block (``eth_getBlockReceipts``), not by polling one receipt per transaction,
  and confirmed once the block is N deep and still canonical (a reorg sends them back to "sent").
* Confirmation is awaitable: ``await manager.wait(intent_key)``.
* Each open intent is owned by one manager (``owner``: one per instance, unique across processes and machines)
  under a lease on its row that the owner renews for all its intents in one statement every ``claim_after / 3``
  seconds (a task beside the watcher). A manager follows only the intents it owns: it never re-broadcasts or
  fee-bumps a live owner's intent. An intent whose owner stopped renewing (its process died) is claimed
  (``claim_stale``, in any open state) by another manager of the same account once ``claim_after`` has passed,
  which then resumes it from the store: the same signed bytes, the same nonce. A manager that finds one of its
  intents taken over (it stalled past its lease) lets it go; its writes of new attempts are fenced by the owner.
* A freshly allocated nonce the node calls used ("nonce too low") means the key sent a transaction the platform did
  not (it was used outside the platform): the allocator is resynced from the chain's pending count and the
  transaction signed again with a new nonce, once; if that fails too the intent ends dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3

from chain.artifacts import Artifact
from chain.client import ChainClient
from chain.errors import (
    ArtifactNotFound,
    ChainError,
    ConfirmationTimeout,
    FeeCapExceeded,
    GasEstimationFailed,
    IntentConflict,
    RpcUnavailable,
    TransactionDropped,
    TransactionRejected,
    TransactionReverted,
)
from chain.fees import FeePolicy, Fees, replacement_fees, suggest_fees
from chain.nonces import AccountRef, NonceAllocator, SqlNonceAllocator
from chain.revert import decode_revert
from chain.settled import DEFAULT_CAPACITY, SettledOutcomes
from chain.signers import Signer
from chain.types import Nonce, Wei
from store.chain import (
    ATTEMPT_REJECTED,
    CONFIRMED,
    DROPPED,
    FAILED,
    MINED,
    PENDING,
    REVERTED,
    TERMINAL_STATUSES,
    AttemptRecord,
    IntentRecord,
    MinedUpdate,
    SqlChainStore,
)

log = logging.getLogger(__name__)
ZERO_WEI = Wei(0)


@dataclass(frozen=True, slots=True)
class Call:
    """What a transaction does: ``to`` (None deploys ``data`` as init code), calldata, value, optional gas."""

    to: ChecksumAddress | None
    data: bytes = b""
    value: Wei = ZERO_WEI
    gas: int | None = None

    @classmethod
    def function(cls, contract: Any, name: str, *args: Any, value: int = 0, gas: int | None = None) -> Call:
        """A contract function call, encoded with the contract's ABI (a web3 ``Contract`` or ``AsyncContract``)."""
        data = contract.encode_abi(name, args=list(args))
        return cls(to=contract.address, data=bytes(HexBytes(data)), value=Wei(value), gas=gas)

    @classmethod
    def deploy(cls, artifact: Artifact, *args: Any, value: int = 0, gas: int | None = None) -> Call:
        factory = Web3().eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        data = factory.constructor(*args).data_in_transaction
        return cls(to=None, data=bytes(HexBytes(data)), value=Wei(value), gas=gas)

    @classmethod
    def transfer(cls, to: str, value: int) -> Call:
        return cls(to=to_checksum_address(to), value=Wei(value), gas=21_000)

    def payload_hash(self, chain_id: int, sender: str) -> str:
        parts = [
            str(chain_id),
            sender.lower(),
            (self.to or "").lower(),
            self.data.hex(),
            str(self.value),
            str(self.gas),
        ]
        return "0x" + keccak(text="|".join(parts)).hex()


@dataclass(frozen=True, slots=True)
class Receipt:
    """A settled intent."""

    intent_key: str
    chain_id: int
    status: str  # confirmed | reverted
    tx_hash: str
    nonce: int
    block_number: int
    block_hash: str
    gas_used: int
    contract_address: ChecksumAddress | None


@dataclass(frozen=True, slots=True)
class Submission:
    intent_key: str
    status: str
    tx_hash: str | None
    nonce: int | None


@dataclass(frozen=True, slots=True)
class LifecycleSettings:
    confirmations: int = 1
    poll_interval: float = 0.25  # seconds between watcher ticks
    stuck_after: float = 30.0  # seconds after sending before a same-nonce replacement
    gas_margin_percent: int = 20  # over eth_estimateGas
    rebroadcast_after: float = 10.0  # seconds before a sent, unmined transaction is broadcast again
    # An open intent's lease: its owner renews it every claim_after / 3 seconds; another manager of the same account
    # takes the intent over only after it has gone this many seconds unrenewed (its owner died or stalled).
    claim_after: float = 30.0
    rpc_timeout: float = 10.0
    # outcomes kept in memory for waiters (chain.settled); an older one is read from its intent's record
    settled_capacity: int = DEFAULT_CAPACITY

    @classmethod
    def for_chain(cls, client: ChainClient, **overrides: Any) -> LifecycleSettings:
        block_time = client.config.block_time_seconds
        base = cls(
            confirmations=max(1, client.config.confirmations),
            poll_interval=min(1.0, max(0.05, block_time / 4)),
            stuck_after=max(3 * block_time, 15.0),
        )
        return cls(**{**{f: getattr(base, f) for f in cls.__dataclass_fields__}, **overrides})


@dataclass
class _Tracked:
    """An open intent as this process follows it."""

    key: str
    to: str | None
    data: bytes
    value: int
    nonce: int
    attempts: list[AttemptRecord]
    accepted_at: float | None = None  # when a node last accepted the newest attempt (monotonic)
    unsent: bool = True
    mined: MinedUpdate | None = None
    nonce_used_seen: bool = False

    @property
    def current(self) -> AttemptRecord:
        return self.attempts[-1]

    @property
    def fees(self) -> Fees:
        return Fees(Wei(self.current.max_fee_per_gas), Wei(self.current.max_priority_fee_per_gas))


class _TakenOver(ChainError):
    """Another manager claimed an intent this one followed (this one stalled past its lease): let it go."""


def default_owner() -> str:
    """An owner id unique to one manager instance: host, process and a random suffix."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"


class _Broadcast:
    ACCEPTED, UNDERPRICED, NONCE_USED, REJECTED, UNAVAILABLE = range(5)


_KNOWN = ("already known", "known transaction", "already imported", "already exists", "already in")
_NONCE_USED = ("nonce too low", "nonce has already been used", "oldnonce", "nonce is too low")
_UNDERPRICED = ("underpriced", "replacement transaction")


def _hex(value: int) -> str:
    return hex(value)


class TransactionManager:
    """Sends and follows the transactions of one signer on one chain (see the module docstring).

    ``store`` persists intents and attempts; ``nonces`` defaults to the SQL allocator on the same store (within
    one process on SQLite, across processes on PostgreSQL); pass a ``RedisNonceAllocator`` to share through Redis.
    ``owner`` names this manager on the intents it owns (``default_owner()``: unique per instance).
    ``on_signed`` is a test seam called after an attempt is persisted and before it is broadcast."""

    def __init__(
        self,
        client: ChainClient,
        signer: Signer,
        store: SqlChainStore,
        nonces: NonceAllocator | None = None,
        *,
        settings: LifecycleSettings | None = None,
        fee_policy: FeePolicy | None = None,
        revert_artifacts: tuple[str, ...] = ("Errors",),
        on_signed: Callable[[str], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        owner: str | None = None,
    ) -> None:
        self.client, self.signer, self.store = client, signer, store
        self.nonces: NonceAllocator = nonces if nonces is not None else SqlNonceAllocator(store)
        self.settings = settings or LifecycleSettings.for_chain(client)
        self.fee_policy = fee_policy or FeePolicy.from_config(client.config)
        self.revert_artifacts = revert_artifacts
        self.account = AccountRef(client.config.chain_id, signer.address)
        self._on_signed = on_signed
        self._clock = clock
        self.owner = owner or default_owner()
        self._lease = timedelta(seconds=self.settings.claim_after)
        self._renewed_at = self._claimed_at = clock()
        self._tracked: dict[str, _Tracked] = {}
        self._by_hash: dict[str, str] = {}
        self._waiters: dict[str, asyncio.Future[Receipt]] = {}
        self._settled: SettledOutcomes[Receipt | ChainError] = SettledOutcomes(self.settings.settled_capacity)
        self._submitting: dict[str, asyncio.Task[Submission]] = {}
        self._sent_queue: list[tuple[str, str]] = []
        self._recheck: set[str] = set()
        self._scanned = -1
        self._fees: tuple[float, Fees] | None = None
        self._fee_lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self._lease_keeper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.last_error: str | None = None

    # ---------------------------------------------------------------- start, stop

    async def start(self) -> TransactionManager:
        """Check the chain, floor the nonce counter at the chain's count, claim and resume the open intents no live
        manager owns, start watching."""
        await self.client.connect()
        pending_count = int(await self._rpc("eth_getTransactionCount", self.account.address, "pending"), 16)
        persisted = await self.store.max_nonce(self.account.chain_id, self.account.address)
        floor = pending_count if self.nonces.cross_process else max(pending_count, (persisted or -1) + 1)
        await self.nonces.floor(self.account, Nonce(floor))
        self._scanned = int(await self._rpc("eth_blockNumber"), 16)
        await self._claim_expired()
        self._renewed_at = self._clock()
        self._watcher = asyncio.create_task(self._watch(), name=f"tx-watcher-{self.client.name}")
        self._lease_keeper = asyncio.create_task(self._keep_leases(), name=f"tx-leases-{self.client.name}")
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

    def _resume(self, intent: IntentRecord) -> None:
        """Follow ``intent``, which this manager owns (created or claimed), from where the store says it is."""
        if intent.key in self._tracked or intent.key in self._submitting:
            return
        live = [a for a in intent.attempts if a.status in ("signed", "sent", "mined")]
        if not live:
            # Persisted as an intent, maybe with a bound nonce, never signed: carry on from there.
            task = asyncio.create_task(self._prepare_and_send(intent))
            task.add_done_callback(_consume_error)  # the error is settled for waiters; nobody awaits this task
            self._submitting[intent.key] = task
            return
        tracked = _Tracked(
            key=intent.key,
            to=intent.to_address,
            data=bytes(HexBytes(intent.data)),
            value=intent.value,
            nonce=live[-1].nonce,
            attempts=live,
        )
        self._track(tracked)
        self._recheck.add(intent.key)
        if intent.status == MINED and intent.block_number is not None and intent.tx_hash and intent.block_hash:
            tracked.unsent = False
            tracked.mined = MinedUpdate(
                intent.key,
                intent.tx_hash,
                intent.block_number,
                intent.block_hash,
                intent.gas_used or 0,
                intent.contract_address,
                True,
            )
            self._recheck.discard(intent.key)

    async def _take_over(self, key: str) -> bool:
        """Claim ``key`` if no live manager owns it and follow it; whether this manager follows it now."""
        claimed = await self.store.claim_stale(key, self.owner, self._lease)
        if claimed is not None:
            log.info("%s: intent %s (%s) claimed by %s", self.client.name, key, claimed.status, self.owner)
            self._resume(claimed)
        return claimed is not None

    async def _claim_expired(self) -> None:
        self._claimed_at = self._clock()
        for intent in await self.store.claim_expired(
            self.account.chain_id, self.account.address, self.owner, self._lease
        ):
            log.info("%s: intent %s (%s) claimed by %s", self.client.name, intent.key, intent.status, self.owner)
            self._resume(intent)

    async def _keep_leases(self) -> None:
        """The lease task beside the watcher (a slow watcher tick must not let the leases run out): every
        ``claim_after / 3`` seconds renew this manager's leases in one statement and claim what dead owners left."""
        while True:
            await asyncio.sleep(self.settings.claim_after / 6)
            try:
                await self._lease_round()
            except Exception:  # a database hiccup: the next round renews in time (two rounds fit in a lease)
                log.exception("%s: renewing the intents' leases failed", self.client.name)

    async def _lease_round(self) -> None:
        now = self._clock()
        ttl = self.settings.claim_after
        if (self._tracked or self._submitting) and now - self._renewed_at >= ttl / 3:
            self._renewed_at = now
            followed = set(self._tracked)
            held = await self.store.renew_leases(self.account.chain_id, self.account.address, self.owner, self._lease)
            for key in followed - held:
                tracked = self._tracked.get(key)
                if tracked is not None:
                    log.warning("%s: intent %s was taken over by another manager", self.client.name, key)
                    self._let_go(tracked)
        if now - self._claimed_at >= ttl / 3:
            await self._claim_expired()

    def _let_go(self, tracked: _Tracked) -> None:
        """Stop following an intent another manager owns now; its waiters read its outcome from the store."""
        self._untrack(tracked)
        self._recheck.discard(tracked.key)
        waiter = self._waiters.pop(tracked.key, None)
        if waiter is not None and not waiter.done():
            waiter.set_exception(_TakenOver(tracked.key))
            waiter.exception()  # mark retrieved: the waiter may have given up already

    def _track(self, tracked: _Tracked) -> None:
        self._tracked[tracked.key] = tracked
        for attempt in tracked.attempts:
            self._by_hash[attempt.tx_hash] = tracked.key

    # ---------------------------------------------------------------- public API

    async def submit(self, intent_key: str, call: Call) -> Submission:
        """Persist the intent and send its transaction once; idempotent per key (see the module docstring).

        Raises GasEstimationFailed (nothing signed), TransactionRejected (the node refused it; nonce released),
        IntentConflict, FeeCapExceeded. An RPC outage after signing does not raise: the watcher re-broadcasts."""
        if intent_key in self._submitting:
            return await asyncio.shield(self._submitting[intent_key])
        record = IntentRecord(
            key=intent_key,
            chain_id=self.account.chain_id,
            sender=self.account.address,
            to_address=call.to,
            data="0x" + call.data.hex(),
            value=call.value,
            gas=call.gas,
            payload_hash=call.payload_hash(self.account.chain_id, self.account.address),
            status=PENDING,
            nonce=None,
            tx_hash=None,
            block_number=None,
            block_hash=None,
            gas_used=None,
            contract_address=None,
            error=None,
            owner=self.owner,
            lease_expires_at=datetime.now(UTC) + self._lease,
        )
        stored, created = await self.store.create_intent(record)
        if stored.payload_hash != record.payload_hash:
            raise IntentConflict(intent_key)
        if not created:
            return await self._existing(stored)
        if intent_key in self._submitting:  # a concurrent submit of the same key got here first
            return await asyncio.shield(self._submitting[intent_key])
        task = asyncio.create_task(self._prepare_and_send(stored))
        self._submitting[intent_key] = task
        return await asyncio.shield(task)

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
            raise ConfirmationTimeout(intent_key, within or 0.0) from None

    async def submit_and_wait(self, intent_key: str, call: Call, within: float | None = None) -> Receipt:
        await self.submit(intent_key, call)
        return await self.wait(intent_key, within)

    # ---------------------------------------------------------------- preparing and sending

    async def _prepare_and_send(self, intent: IntentRecord) -> Submission:
        try:
            return await self._prepare_and_send_inner(intent)
        finally:
            self._submitting.pop(intent.key, None)

    async def _prepare_and_send_inner(self, intent: IntentRecord) -> Submission:
        key = intent.key
        to = intent.to_address
        data = bytes(HexBytes(intent.data))
        try:
            gas = intent.gas if intent.gas is not None else await self._estimate_gas(to, data, intent.value)
            fees = await self._market_fees()
        except (GasEstimationFailed, FeeCapExceeded) as err:
            await self.store.reject(key, None, str(err))
            self._settle(key, err)
            raise
        fresh = intent.nonce is None  # allocated here: a "nonce too low" cannot be an attempt of ours mined
        nonce = Nonce(intent.nonce) if intent.nonce is not None else await self.nonces.allocate(self.account, key)
        try:
            tracked = await self._sign_and_track(key, to, data, intent.value, nonce, gas, fees)
        except _TakenOver:
            return await self._taken_over_before_signing(key)
        if self._on_signed is not None:
            await self._on_signed(key)
        outcome = await self._send(tracked)
        if outcome == _Broadcast.NONCE_USED and fresh:
            try:
                tracked, outcome = await self._resend_after_resync(tracked, gas, fees)
            except _TakenOver:
                return await self._taken_over_before_signing(key)
        if outcome == _Broadcast.REJECTED:
            error = self._settled.get(key)
            assert isinstance(error, ChainError)
            raise error
        self._wake.set()
        return Submission(key, "sent" if not tracked.unsent else "signed", tracked.current.tx_hash, tracked.nonce)

    async def _taken_over_before_signing(self, key: str) -> Submission:
        log.warning("%s: intent %s was taken over by another manager before it was signed", self.client.name, key)
        stored = await self.store.get_intent(key)
        assert stored is not None
        return Submission(key, stored.status, stored.tx_hash, stored.nonce)

    async def _sign_and_track(
        self, key: str, to: str | None, data: bytes, value: int, nonce: Nonce, gas: int, fees: Fees
    ) -> _Tracked:
        attempt = self._sign(to, data, value, nonce, gas, fees)
        if not await self.store.record_signed(key, attempt, owner=self.owner):
            raise _TakenOver(key)
        tracked = _Tracked(key=key, to=to, data=data, value=value, nonce=nonce, attempts=[attempt])
        self._track(tracked)
        return tracked

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
        nonce = await self.nonces.allocate(self.account, stale.key)
        tracked = await self._sign_and_track(stale.key, stale.to, stale.data, stale.value, nonce, gas, fees)
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
            tx["to"] = to_checksum_address(to)
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
        try:
            answer = await self.client.provider.make_request("eth_sendRawTransaction", [attempt.raw])  # type: ignore[arg-type]
        except RpcUnavailable as err:
            self.last_error = str(err)[:300]
            tracked.unsent = True
            return _Broadcast.UNAVAILABLE
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
        if len(tracked.attempts) > 1 and any(token in message for token in _UNDERPRICED):
            tracked.unsent = False  # an earlier attempt is still pending; bump again later
            return _Broadcast.UNDERPRICED
        if len(tracked.attempts) > 1:
            # A replacement was refused; the earlier attempt stands.
            log.warning("replacement of %s refused: %s", tracked.key, message)
            tracked.attempts.pop()
            tracked.accepted_at = self._clock()
            return _Broadcast.UNDERPRICED
        rejected = TransactionRejected(f"{self.client.name} refused {tracked.key}: {message}", tracked.key)
        await self.nonces.release(self.account, Nonce(tracked.nonce))
        await self.store.reject(tracked.key, attempt.tx_hash, message)
        self._untrack(tracked)
        self._settle(tracked.key, rejected)
        return _Broadcast.REJECTED

    def _accepted(self, tracked: _Tracked) -> None:
        tracked.unsent = False
        tracked.accepted_at = self._clock()
        self._sent_queue.append((tracked.key, tracked.current.tx_hash))

    async def _estimate_gas(self, to: str | None, data: bytes, value: int) -> int:
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
        return estimate + estimate * self.settings.gas_margin_percent // 100

    def _decode(self, revert_data: object) -> str | None:
        if not isinstance(revert_data, str) or len(revert_data) < 10:
            return None
        try:
            decoded = decode_revert(revert_data, self.revert_artifacts)
        except (ArtifactNotFound, ValueError):
            return None
        return None if decoded is None else str(decoded)

    async def _market_fees(self) -> Fees:
        cached = self._fees
        if cached is not None and self._clock() - cached[0] < self.settings.poll_interval:
            return cached[1]
        async with self._fee_lock:
            cached = self._fees
            if cached is not None and self._clock() - cached[0] < self.settings.poll_interval:
                return cached[1]
            policy = self.fee_policy
            history = await self._rpc(
                "eth_feeHistory", _hex(policy.history_blocks), "latest", [policy.reward_percentile]
            )
            next_base = Wei(int(history["baseFeePerGas"][-1], 16))
            tips = [Wei(int(reward[0], 16)) for reward in history.get("reward") or [] if reward]
            fees = suggest_fees(next_base, tips, policy)
            self._fees = (self._clock(), fees)
            return fees

    async def _rpc(self, method: str, *params: Any) -> Any:
        return await self.client.rpc(method, *params)

    # ---------------------------------------------------------------- watching

    async def _watch(self) -> None:
        while True:
            try:
                await self._tick()
            except ChainError as err:
                self.last_error = str(err)[:300]
                log.warning("transaction watcher on %s: %s", self.client.name, err)
            except Exception:  # the watcher must outlive any one bad tick; the error is logged with its trace
                log.exception("transaction watcher on %s failed a tick", self.client.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
            self._wake.clear()

    async def _tick(self) -> None:
        await self._flush_sent()
        if not self._tracked:
            return
        head = int(await self._rpc("eth_blockNumber"), 16)
        await self._broadcast_unsent()
        await self._scan(head)
        await self._recheck_receipts()
        await self._confirm(head)
        await self._replace_stuck()
        await self._flush_sent()

    async def _flush_sent(self) -> None:
        queue, self._sent_queue = self._sent_queue, []
        if queue:
            await self.store.mark_sent(queue)

    async def _broadcast_unsent(self) -> None:
        now = self._clock()
        due = [
            t
            for t in self._tracked.values()
            if t.mined is None
            and (t.unsent or (t.accepted_at is not None and now - t.accepted_at > self.settings.rebroadcast_after))
        ]
        for tracked in sorted(due, key=lambda t: t.nonce):
            if await self._send(tracked) == _Broadcast.UNAVAILABLE:
                return

    async def _scan(self, head: int) -> None:
        """Find our transactions in the blocks since the last scan, one receipts call per block."""
        if all(t.mined is not None for t in self._tracked.values()):
            self._scanned = head
            return
        found: list[MinedUpdate] = []
        for number in range(self._scanned + 1, head + 1):
            receipts = await self._rpc("eth_getBlockReceipts", _hex(number)) or []
            for receipt in receipts:
                key = self._by_hash.get(str(receipt["transactionHash"]))
                if key is not None and key in self._tracked:
                    found.append(self._mined(key, receipt))
            self._scanned = number
        await self._record_mined(found)

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
        )

    async def _record_mined(self, found: Sequence[MinedUpdate]) -> None:
        if not found:
            return
        await self.store.mark_mined(found)
        for update in found:
            tracked = self._tracked[update.intent_key]
            tracked.mined = update
            tracked.unsent = False
            self._recheck.discard(update.intent_key)

    async def _recheck_receipts(self) -> None:
        """Resumed, reorged and nonce-taken intents: ask for each attempt's receipt directly."""
        found: list[MinedUpdate] = []
        dropped: list[_Tracked] = []
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
                if tracked.nonce_used_seen:
                    dropped.append(tracked)
                continue
        await self._record_mined(found)
        for tracked in dropped:
            self._recheck.discard(tracked.key)
            await self.store.finish([(tracked.key, DROPPED, "nonce used by another transaction")])
            self._untrack(tracked)
            self._settle(tracked.key, TransactionDropped(f"{tracked.key}: nonce {tracked.nonce} taken", tracked.key))

    async def _confirm(self, head: int) -> None:
        depth = max(1, self.settings.confirmations)
        ripe = [t for t in self._tracked.values() if t.mined is not None and head - t.mined.block_number + 1 >= depth]
        if not ripe:
            return
        canonical: dict[int, str] = {}
        outcomes: list[tuple[str, str, str | None]] = []
        settled: list[tuple[_Tracked, Receipt | ChainError]] = []
        reorged: list[str] = []
        for tracked in ripe:
            mined = tracked.mined
            assert mined is not None
            if mined.block_number not in canonical:
                block = await self._rpc("eth_getBlockByNumber", _hex(mined.block_number), False)
                canonical[mined.block_number] = str(block["hash"]) if block else ""
            if canonical[mined.block_number] != mined.block_hash:
                tracked.mined = None
                reorged.append(tracked.key)
                continue
            receipt = _receipt(self.account.chain_id, tracked.nonce, mined)
            if mined.success:
                outcomes.append((tracked.key, CONFIRMED, None))
                settled.append((tracked, receipt))
            else:
                error = await self._revert_error(tracked, mined)
                outcomes.append((tracked.key, REVERTED, str(error)))
                settled.append((tracked, error))
        if reorged:
            await self.store.mark_unmined(reorged)
            self._recheck.update(reorged)
        await self.store.finish(outcomes)
        for tracked, result in settled:
            self._untrack(tracked)
            self._settle(tracked.key, result)

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
            and t.accepted_at is not None
            and now - t.accepted_at > self.settings.stuck_after
        ]
        if not stuck:
            return
        self._fees = None  # replacements price against the market now
        market = await self._market_fees()
        for tracked in sorted(stuck, key=lambda t: t.nonce):
            try:
                fees = replacement_fees(tracked.fees, market, self.fee_policy)
            except FeeCapExceeded as err:
                log.warning("cannot replace %s: %s", tracked.key, err)
                tracked.accepted_at = now
                continue
            attempt = self._sign(tracked.to, tracked.data, tracked.value, tracked.nonce, tracked.current.gas, fees)
            if not await self.store.record_signed(
                tracked.key, attempt, replaces=tracked.current.tx_hash, owner=self.owner
            ):
                log.warning("%s: stuck %s was taken over by another manager", self.client.name, tracked.key)
                self._let_go(tracked)
                continue
            tracked.attempts.append(attempt)
            self._by_hash[attempt.tx_hash] = tracked.key
            log.info("replacing stuck %s at nonce %s with %s", tracked.key, tracked.nonce, attempt.tx_hash)
            await self._send(tracked)

    def _untrack(self, tracked: _Tracked) -> None:
        self._tracked.pop(tracked.key, None)
        for attempt in tracked.attempts:
            self._by_hash.pop(attempt.tx_hash, None)

    def _settle(self, key: str, result: Receipt | ChainError) -> None:
        self._settled.settle(key, result)
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            if isinstance(result, ChainError):
                waiter.set_exception(result)
                waiter.exception()  # mark retrieved: a waiter may have given up already
            else:
                waiter.set_result(result)

    # ---------------------------------------------------------------- inspection

    @property
    def in_flight(self) -> int:
        return len(self._tracked) + len(self._submitting)


def _consume_error(task: asyncio.Task[Submission]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.info("resumed intent failed: %s", task.exception())


def _receipt(chain_id: int, nonce: int, mined: MinedUpdate) -> Receipt:
    return Receipt(
        intent_key=mined.intent_key,
        chain_id=chain_id,
        status=CONFIRMED if mined.success else REVERTED,
        tx_hash=mined.tx_hash,
        nonce=nonce,
        block_number=mined.block_number,
        block_hash=mined.block_hash,
        gas_used=mined.gas_used,
        contract_address=to_checksum_address(mined.contract_address) if mined.contract_address else None,
    )


def _receipt_or_raise(stored: IntentRecord) -> Receipt:
    if stored.status == CONFIRMED:
        assert stored.tx_hash
        assert stored.block_number is not None
        assert stored.block_hash
        assert stored.nonce is not None
        return Receipt(
            intent_key=stored.key,
            chain_id=stored.chain_id,
            status=CONFIRMED,
            tx_hash=stored.tx_hash,
            nonce=stored.nonce,
            block_number=stored.block_number,
            block_hash=stored.block_hash,
            gas_used=stored.gas_used or 0,
            contract_address=to_checksum_address(stored.contract_address) if stored.contract_address else None,
        )
    if stored.status == REVERTED:
        raise TransactionReverted(stored.error or f"{stored.key} reverted", tx_hash=stored.tx_hash)
    if stored.status == DROPPED:
        raise TransactionDropped(stored.error or f"{stored.key} dropped", stored.key)
    assert stored.status == FAILED
    raise TransactionRejected(stored.error or f"{stored.key} failed", stored.key, stored.tx_hash)
