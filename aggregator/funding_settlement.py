"""An admin's settlement of an unfunded loan: a loan funded off-chain whose lender refused the funding instruction or
reported the funding failed (``LoanFlag.UNFUNDED``), which the default job cancels on its own only once the lender's
own status of the offer says it was not funded (``aggregator.servicing.defaults``). What the job leaves — a lender
that says it funded the loan, or does not answer — an admin settles with the lender, then records here:

* **funded** — the lender did pay the borrower out: the loan's cancel is barred (its next attempt's intent key
  taken, so neither the job nor an admin can send one after; refused when one is in flight or confirmed), and so is
  the default job's hold; the accept becomes ``funded`` (a compare-and-set from ``fund-refused``) with the audit
  entry, so the loan is serviced from the next round on (days past due, default, liquidation); then a hold the job
  had sent is released by the operator's account (waited for first if on its way). A release not done within the
  wait is a 503 (``hold-not-released``): the settlement stands, and asking again releases it.
* **not funded** — the operator's account (``CREDITMESH_OPERATOR_KEY``) sends ``cancelUnfunded`` now, without asking
  the lender, under the default job's own intent key (one transaction per attempt, whoever sends it; an attempt the
  node refused or dropped is followed by the next, simulated first, when asked again); its receipt's
  ``LoanCancelled`` is applied to the ledger at once, so the loan is ``cancelled`` and its collateral is back with
  the borrower. A cancel not confirmed within the wait goes on, and the default job resumes it.

Each settlement is an audit entry (``funding-settlement``) naming the admin's key and the admin's note, written
before anything is sent; one the contract would refuse (its simulation reverts) is refused before it is recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

from aggregator.errors import (
    HoldNotReleased,
    LoanNotCancellable,
    LoanNotFound,
    LoanNotUnfunded,
    OperatorUnavailable,
)
from aggregator.platform import ChainRuntime, earlier_deployment
from aggregator.servicing.defaults import CancelOutcome, DefaultJob, liquidation_held
from aggregator.servicing.intent_keys import cancel_intent_key, current_attempt, hold_intent_key
from chain.errors import ChainError
from chain.signers import Role
from chain.transactions import BARRED_PAYLOAD, TransactionManager
from store.db import Database

#: ``FundingSettlement.outcome`` values
FUNDED, NOT_FUNDED = "funded", "not-funded"


@dataclass(frozen=True, slots=True)
class UnfundedLoan:
    """An open loan its lender refused, or reported failed, the funding of."""

    id: str
    chain_name: str
    chain_id: int
    loan_ref: int  # the CreditAggregator's loan id
    contract: str  # the CreditAggregator's address


@dataclass(frozen=True, slots=True)
class FundingSettlement:
    """What a settlement did: ``funded`` (serviced from now on), or ``not-funded`` with the ``cancelUnfunded``
    transaction (``confirmed`` once its receipt is applied: the loan is cancelled)."""

    loan_id: str
    outcome: str
    tx_hash: str | None = None
    confirmed: bool = False


class FundingSettlementStore(Protocol):
    def unfunded(self, loan_id: str) -> UnfundedLoan | None:
        """The loan when it is open and unfunded; None otherwise (no such loan, funded, a pool's, closed)."""
        ...

    def loan_exists(self, loan_id: str) -> bool: ...

    def settled_funded(self, loan_id: str) -> UnfundedLoan | None:
        """The loan when it is open, funded off-chain, and an admin settled it funded; None otherwise."""
        ...

    def settle_funded(self, loan: UnfundedLoan, actor: str, note: str, now: datetime) -> bool:
        """The loan's accept ``fund-refused`` → ``funded`` with the audit entry, in one transaction; False when it
        moved meanwhile (settled, cancelled)."""
        ...

    def record_not_funded(self, loan: UnfundedLoan, actor: str, note: str, now: datetime) -> None:
        """The audit entry of a settlement as not funded, committed before the cancel is sent."""
        ...


class FundingSettlements:
    def __init__(
        self,
        store: FundingSettlementStore,
        chains: Mapping[str, ChainRuntime],
        database: Database,
        *,
        wait_seconds: float = 30.0,
    ) -> None:
        self._store, self._chains, self._database = store, chains, database
        self._wait_seconds = wait_seconds

    async def settle(self, loan_id: str, funded: bool, actor: str, note: str) -> FundingSettlement:
        """Record the admin's settlement of the unfunded loan ``loan_id`` (the module's docstring).

        Raises:
            LoanNotFound: no such loan.
            LoanNotUnfunded: the loan is not open and unfunded, or (funded) a ``cancelUnfunded`` of it is in flight
                or confirmed, or it is a loan of an earlier deployment of the chain's contracts
                (``platform.earlier_deployment``).
            OperatorUnavailable: no operator account for its chain in this process (not funded; or funded, when its
                liquidation is held).
            LoanNotCancellable: (not funded) the contract refuses to cancel it.
            HoldNotReleased: (funded) settled, but its liquidation hold's release is not mined within the wait.
            ChainError: (not funded) the node refused, dropped or did not answer the cancel.
        """
        loan = await asyncio.to_thread(self._store.unfunded, loan_id)
        if loan is None and funded:  # settled funded before, its hold not released then: asking again releases it
            again = await self._release_pending(loan_id)
            if again is not None:
                return again
        if loan is None:
            if not await asyncio.to_thread(self._store.loan_exists, loan_id):
                raise LoanNotFound(loan_id)
            raise LoanNotUnfunded(loan_id, "it is not an open loan its lender refused to fund")
        chain = self._chains.get(loan.chain_name)
        if chain is None:
            raise LoanNotUnfunded(loan_id, f"its chain {loan.chain_name} is not configured here")
        earlier = earlier_deployment(chain, loan.contract)
        if earlier is not None:  # cancelled, barred or released there, it would be the newest's loan of the same id
            raise LoanNotUnfunded(loan_id, earlier)
        operator = chain.senders.get(Role.OPERATOR)
        if funded:
            return await self._funded(loan, chain, operator, actor, note)
        if operator is None:  # nothing recorded, nothing sent
            raise OperatorUnavailable(f"no operator account on {chain.name}: set CREDITMESH_OPERATOR_KEY")
        job = DefaultJob(chain.client, chain.record, self._database, operator)
        refused = await job.cancel_refusal(loan.loan_ref)
        if refused is not None:  # nothing recorded: the settlement did not happen
            raise LoanNotCancellable(loan.loan_ref, f"cancelUnfunded would revert: {refused}")
        await asyncio.to_thread(self._store.record_not_funded, loan, actor, note, datetime.now(UTC))
        outcome: CancelOutcome = await job.cancel(loan.loan_ref, within=self._wait_seconds)
        return FundingSettlement(loan.id, NOT_FUNDED, outcome.tx_hash, outcome.confirmed)

    async def _funded(
        self, loan: UnfundedLoan, chain: ChainRuntime, operator: TransactionManager | None, actor: str, note: str
    ) -> FundingSettlement:
        """Bar the loan's cancel (one insert of its next attempt's intent key: a cancel in flight or confirmed
        refuses the settlement, and none can be sent after it), bar the default job's hold the same way, record the
        settlement, then release a hold the job had sent. The intents' store is shared by every account's manager,
        so the relayer's bars them when this process has no operator account — unless a hold is to be released."""
        manager = operator if operator is not None else chain.transactions
        aggregator, collateral = chain.record.address("CreditAggregator"), chain.record.address("CollateralManager")
        hold = hold_intent_key(loan.chain_id, collateral, loan.loan_ref)
        if operator is None and (
            await manager.store.attempts(hold)  # any attempt (a missing number is no end: see current_attempt)
            or await liquidation_held(chain.client, chain.record, loan.loan_ref)
        ):
            raise OperatorUnavailable(
                f"its liquidation is held, and only the operator releases it: no operator account on {chain.name}: "
                "set CREDITMESH_OPERATOR_KEY"
            )
        why = f"settled funded by {actor}"
        # the next cancel attempt is barred (those before it refused, dropped or reverted: nothing cancelled by them)
        cancels = partial(cancel_intent_key, loan.chain_id, aggregator, loan.loan_ref)
        cancel, _ = await current_attempt(manager.store, cancels)
        if not await manager.bar(cancel, aggregator, why):
            raise LoanNotUnfunded(loan.id, "a cancelUnfunded of it was sent: it is being cancelled")
        # the job's next hold attempt is barred (those before it refused, dropped or reverted: nothing held by them)
        holds = partial(hold_intent_key, loan.chain_id, collateral, loan.loan_ref)
        attempt, _ = await current_attempt(manager.store, holds)
        await manager.bar(attempt, collateral, why)  # False: the job sent one, released below
        if not await asyncio.to_thread(self._store.settle_funded, loan, actor, note, datetime.now(UTC)):
            raise LoanNotUnfunded(loan.id, "it was settled or closed meanwhile")
        if operator is not None:  # serviced from now on, so liquidated when unhealthy: a hold goes
            await self._release(loan, chain, operator)
        return FundingSettlement(loan.id, FUNDED, confirmed=True)

    async def _release(self, loan: UnfundedLoan, chain: ChainRuntime, operator: TransactionManager) -> None:
        job = DefaultJob(chain.client, chain.record, self._database, operator)
        try:
            await job.release_hold(loan.loan_ref, within=self._wait_seconds)
        except ChainError as err:
            raise HoldNotReleased(loan.id, str(err)) from err

    async def _release_pending(self, loan_id: str) -> FundingSettlement | None:
        """A loan settled funded whose liquidation hold was not released then (the chain slow or down): released now,
        nothing recorded again; None when the loan is no such loan."""
        loan = await asyncio.to_thread(self._store.settled_funded, loan_id)
        chain = None if loan is None else self._chains.get(loan.chain_name)
        if loan is None or chain is None or earlier_deployment(chain, loan.contract) is not None:
            return None
        operator = chain.senders.get(Role.OPERATOR)
        collateral = chain.record.address("CollateralManager")
        holds = await chain.transactions.store.attempts(hold_intent_key(loan.chain_id, collateral, loan.loan_ref))
        if operator is None or all(hold.payload_hash == BARRED_PAYLOAD for _, hold in holds):
            return None
        await self._release(loan, chain, operator)
        return FundingSettlement(loan.id, FUNDED, confirmed=True)
