"""The state one transaction manager keeps (tracked intents, waiters, settled outcomes) and the node
queries every part of it uses (RPC, fee market, revert decoding)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from chain.client import ChainClient
from chain.errors import ArtifactNotFound, ChainError
from chain.fees import FeePolicy, Fees, suggest_fees
from chain.nonces import AccountRef, NonceAllocator, SqlNonceAllocator
from chain.revert import decode_revert
from chain.settled import SettledOutcomes
from chain.signers import Signer
from chain.transactions._broadcasts import Broadcasts
from chain.transactions._settings import LifecycleSettings, default_owner
from chain.transactions._tracked import _hex, _Round, _Tracked
from chain.transactions._values import Call, Receipt, Submission
from chain.types import Wei
from store.chain import PENDING, IntentRecord, SqlChainStore


class _Core:
    """What a manager keeps and asks the node; the layers below build on it, ``TransactionManager`` last."""

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
        self._round: _Round | None = None  # the watcher's round not yet written (``_Watching._write_round``)
        self._scanned = -1
        # nothing followed since the scan last moved: the blocks up to the head hold nothing of ours to find
        self._idle = False
        self._idle_lock = asyncio.Lock()
        self._fees: tuple[float, Fees] | None = None
        self._fee_lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self._lease_keeper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.last_error: str | None = None
        self._broadcasts = Broadcasts(client.provider)

    async def _rpc(self, method: str, *params: Any) -> Any:
        return await self.client.rpc(method, *params)

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

    def _intent(self, key: str, call: Call) -> IntentRecord:
        """A new intent ``key`` of ``call`` from this manager's account, this manager's under a fresh lease."""
        return IntentRecord(
            key=key,
            chain_id=self.account.chain_id,
            sender=self.account.address,
            to_address=call.to,
            data="0x" + call.data.hex(),
            value=call.value,
            gas=call.gas,
            payload_hash=call.payload_hash(self.account.chain_id, self.account.address),
            status=PENDING,
            owner=self.owner,
            lease_expires_at=datetime.now(UTC) + self._lease,
        )

    def _decode(self, revert_data: object) -> str | None:
        if not isinstance(revert_data, str) or len(revert_data) < 10:
            return None
        try:
            decoded = decode_revert(revert_data, self.revert_artifacts)
        except (ArtifactNotFound, ValueError):
            return None
        return None if decoded is None else str(decoded)

    def _track(self, tracked: _Tracked) -> None:
        self._tracked[tracked.key] = tracked
        for attempt in tracked.attempts:
            self._by_hash[attempt.tx_hash] = tracked.key

    def _untrack(self, tracked: _Tracked) -> None:
        self._tracked.pop(tracked.key, None)
        for attempt in tracked.attempts:
            self._by_hash.pop(attempt.tx_hash, None)
        if not self._tracked:
            self._idle = True

    async def _skip_idle_blocks(self) -> None:
        """Run before a broadcast and a scan: after a time with nothing followed, the scan resumes from the head read
        now, before anything is broadcast again — the blocks mined meanwhile cannot hold a transaction of ours (a
        claimed intent's receipt is asked for directly). One ``eth_blockNumber`` per idle spell, where the first intent
        after an idle hour had the watcher read every block of that hour, one ``eth_getBlockReceipts`` each."""
        if not self._idle:
            return
        async with self._idle_lock:  # concurrent first broadcasts share one read
            if self._idle:
                head = int(await self._rpc("eth_blockNumber"), 16)
                self._idle = False  # a read begun before any later broadcast: its blocks come after ``head``
                self._scanned = max(self._scanned, head)

    def _settle(self, key: str, result: Receipt | ChainError) -> None:
        self._settled.settle(key, result)
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            if isinstance(result, ChainError):
                waiter.set_exception(result)
                waiter.exception()  # mark retrieved: a waiter may have given up already
            else:
                waiter.set_result(result)
