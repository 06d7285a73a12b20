"""Owning intents: resuming what this manager owns, claiming what a dead owner left, renewing the leases in
one statement per round, letting go of what another manager took over."""

from __future__ import annotations

import asyncio
import logging

from hexbytes import HexBytes

from chain.transactions._claims import OpenLeases
from chain.transactions._sending import _Sending
from chain.transactions._tracked import _Tracked
from chain.transactions._values import Submission
from store.chain import ATTEMPT_MINED, ATTEMPT_SENT, MINED, IntentRecord

log = logging.getLogger("chain.transactions")


def _consume_error(task: asyncio.Task[Submission]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.info("resumed intent failed: %s", task.exception())


class _Owning(_Sending):
    """Which open intents this manager follows, under leases on their rows."""

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
            self._wake_when_done(task)
            return
        tracked = _Tracked(
            key=intent.key,
            to=intent.to_address,
            data=bytes(HexBytes(intent.data)),
            value=intent.value,
            nonce=live[-1].nonce,
            attempts=live,
            accepted={a.tx_hash for a in live if a.status in (ATTEMPT_SENT, ATTEMPT_MINED)},
        )
        self._track(tracked)
        self._recheck.add(intent.key)  # its receipt is asked for directly: mined already, or by its next block
        if intent.status == MINED:
            # Mined before its owner died: not broadcast again. The store does not say whether it succeeded, so the
            # receipt re-check learns that (and its block) before it is confirmed or reported reverted; should a
            # reorg have taken it away meanwhile, it is broadcast again after ``rebroadcast_after``.
            tracked.unsent = False
            tracked.accepted_at = tracked.sent_at = self._clock()
        self._wake.set()  # an idle watcher sleeps until woken (chain.transactions._watching)

    def _wake_when_done(self, task: asyncio.Task[Submission]) -> None:
        """Wake the watcher when a submission ends, however it ends (an idle watcher sleeps until woken)."""
        task.add_done_callback(lambda _: self._wake.set())

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
        ``claim_after / 3`` seconds renew this manager's leases in one statement and claim what dead owners left
        (when the process's shared read says this account has any: ``chain.transactions._claims``)."""
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
            self._claimed_at = now
            leases = await OpenLeases.of(self.store).view(max_age=ttl / 6)
            following = len(self._tracked.keys() | self._submitting.keys())
            if leases.to_claim(self.account.chain_id, self.account.address, self.owner, following=following):
                await self._claim_expired()
