"""The collateral sweep: ``claimCollateral`` of a closed loan whose collateral the token refused to push, one
attempt at a time, at most ``MAX_CLAIM_ATTEMPTS`` (those refused for the keeper's funds not counted), left to the
relayer while its own claim is in flight."""

from __future__ import annotations

from aggregator.repaying import CLAIM_FAILED, MAX_CLAIM_ATTEMPTS
from aggregator.repaying import claim_intent_key as relayed_claim_key
from aggregator.servicing.keeper._core import _Core, log
from aggregator.servicing.keeper._keys import claim_intent_key
from aggregator.servicing.keeper._report import RoundReport
from aggregator.servicing.leased import Leader
from aggregator.servicing.repository import UnclaimedCollateral
from aggregator.servicing.sender_funds import refused_for_funds
from chain.errors import ChainError
from chain.transactions import Call
from store.chain import TERMINAL_STATUSES, IntentRecord


class _Claiming(_Core):
    async def _claim(self, claimable: UnclaimedCollateral, report: RoundReport, leader: Leader | None) -> None:
        """Send ``claimCollateral`` for a closed loan whose collateral the token refused to push: one attempt at a
        time, each under its own intent, the next only after the last failed and once a simulation passes."""
        ref = claimable.loan_ref
        call = Call.function(self._manager_abi, "claimCollateral", ref)
        key, existing, earlier = await self._claim_attempt(ref)
        if key is None:
            report.unclaimed[ref] = f"{MAX_CLAIM_ATTEMPTS} claims failed: not sent again"
            if self._claim_refusals.get(ref) != report.unclaimed[ref]:  # said once, not every round
                self._claim_refusals[ref] = report.unclaimed[ref]
                log.error("keeper on chain %s: collateral of loan %s: %s", self.chain_id, ref, report.unclaimed[ref])
            return
        if existing is None:  # simulate before an attempt's first send only: a resumed intent is already decided
            relayed = await self._relayed_claim_in_flight(ref)
            if relayed is not None:
                report.unclaimed[ref] = f"the relayer's claim {relayed} is in flight"
                return
            refused = await self._simulate(call)
            if refused is not None:
                report.unclaimed[ref] = f"claimCollateral would revert: {refused}"
                if self._claim_refusals.get(ref) != refused:  # said once per reason, not every round
                    self._claim_refusals[ref] = refused
                    log.info(
                        "keeper on chain %s: collateral of loan %s not claimable now: %s", self.chain_id, ref, refused
                    )
                return
            deferred = await self.funds.deferral("claimCollateral", earlier)
            if deferred is not None:  # the keeper's account cannot pay for gas now (``sender_funds``)
                report.unclaimed[ref] = deferred
                return
        if leader is not None:
            await leader.fence()
        try:
            tx_hash = await self._send(key, call)
        except ChainError as err:
            self.funds.saw(err)
            report.unclaimed[ref] = str(err)
            log.warning("keeper on chain %s: claimCollateral of loan %s: %s", self.chain_id, ref, err)
            return
        report.claimed[ref] = tx_hash
        self._claim_refusals.pop(ref, None)
        log.info(
            "keeper on chain %s: claimed loan %s's collateral (%s of %s) for %s in %s",
            self.chain_id,
            ref,
            claimable.amount,
            claimable.asset,
            claimable.borrower,
            tx_hash,
        )

    async def _claim_attempt(self, ref: int) -> tuple[str | None, IntentRecord | None, tuple[IntentRecord, ...]]:
        """The key of the claim attempt to send or resume, its intent when it exists, and the failed attempts before
        it, in order: the first attempt stored that did not fail (a reverted, failed or dropped one stays so under
        its key), else the one after the last stored; no key once ``MAX_CLAIM_ATTEMPTS`` failed, not counting those
        the node refused for the keeper's funds (they never reached the token: until 2026-11-29 five rounds of an
        empty account ended the sweep of the loan for good). Every attempt stored is read: a missing number is no
        end (0037 rekeyed each attempt by the CollateralManager it was sent to)."""
        stored = await self.transactions.store.attempts(claim_intent_key(self.chain_id, self.chain.manager, ref))
        for _, existing in stored:
            if existing.status not in CLAIM_FAILED:
                return existing.key, existing, ()
        earlier = tuple(intent for _, intent in stored)
        attempt = stored[-1][0] + 1 if stored else 1
        if attempt - sum(refused_for_funds(intent) for intent in earlier) > MAX_CLAIM_ATTEMPTS:
            return None, None, earlier
        return claim_intent_key(self.chain_id, self.chain.manager, ref, attempt), None, earlier

    async def _relayed_claim_in_flight(self, ref: int) -> str | None:
        """The key of the relayer's claim of ``ref`` that is in flight (any of its attempts stored), if one is."""
        stored = await self.transactions.store.attempts(relayed_claim_key(self.chain_id, self.chain.manager, ref))
        return next((relayed.key for _, relayed in stored if relayed.status not in TERMINAL_STATUSES), None)
