"""Liquidations: a round's sends within what the keeper holds of each debt asset, at most one in flight per loan
(numbered), and their receipts waited for together."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from aggregator.servicing.health import (
    Liquidation,
    LiquidationRefused,
    Position,
    Refusal,
    largest_repay_leaving_no_dust,
    liquidation,
    repay_to_send,
)
from aggregator.servicing.keeper._core import _Core, log
from aggregator.servicing.keeper._keys import liquidation_intent_key, liquidation_intent_prefix
from aggregator.servicing.keeper._reads import _Read
from aggregator.servicing.keeper._report import RoundReport, Sent
from aggregator.servicing.leased import Leader
from aggregator.servicing.repository import OpenLoan
from chain.errors import ChainError, GasEstimationFailed
from chain.transactions import Call
from store.chain import TERMINAL_STATUSES, IntentRecord


@dataclass(frozen=True, slots=True)
class _Submitted:
    """A liquidation a round sent, its receipt not waited for yet."""

    loan_ref: int
    key: str
    outcome: Liquidation


@dataclass
class _Sends:
    """What a round sent so far: its liquidations, and what they spend of the keeper's debt assets."""

    liquidations: list[_Submitted] = field(default_factory=list)
    spent: Counter[str] = field(default_factory=Counter)


class _Liquidating(_Core):
    async def _liquidations_in_flight(self) -> dict[int, str]:
        """The keeper's liquidations still open (sent, not settled): a loan whose liquidation was not confirmed in time
        reads as liquidatable again while it waits, and a second liquidation would queue behind the first and revert,
        or take more than the first left due. (Read once per round; ``_liquidation_key`` checks again before a send.)
        Keys of either form: ``<loan>:n<number>``, and ``<loan>:<block>`` of the keepers before liquidations were
        numbered."""
        prefix = liquidation_intent_prefix(self.chain_id, self.chain.manager)
        intents = await self.transactions.store.open_intents(self.chain_id, self.transactions.account.address)
        return {int(i.key.removeprefix(prefix).split(":")[0]): i.key for i in intents if i.key.startswith(prefix)}

    async def _try_liquidate(
        self, loan: OpenLoan, position: Position, read: _Read, leader: Leader | None, sends: _Sends
    ) -> str | None:
        """Send the liquidation of ``loan`` now (its receipt is waited for with the round's others); None when sent,
        else why not."""
        if read.paused:
            return "liquidations are paused (pauseLiquidations)"
        if loan.loan_ref in read.in_flight:
            return f"its liquidation {read.in_flight[loan.loan_ref]} is not settled yet"
        repay = repay_to_send(position, read.thresholds, self.settings.margin_bps)
        try:
            outcome = liquidation(position, read.thresholds, repay)
        except LiquidationRefused as err:
            smaller = largest_repay_leaving_no_dust(position, read.thresholds) if err.refusal is Refusal.DUST else None
            if smaller is None:
                return f"the contract's rules refuse it: {err}"
            repay, outcome = smaller, liquidation(position, read.thresholds, smaller)  # the most it takes, no dust
        debt_asset = read.debts[loan.loan_ref][0]
        balance, allowance = read.balances.get(debt_asset, (0, 0))
        balance, allowance = balance - sends.spent[debt_asset], allowance - sends.spent[debt_asset]  # this round's
        if min(balance, allowance) < repay:
            return (
                f"the keeper {self.chain.keeper} holds {balance} and allows {allowance} of {debt_asset}, needs {repay}"
            )
        call = Call.function(self._manager_abi, "liquidate", loan.loan_ref, repay)
        refused = await self._simulate(call)
        if refused is not None:
            return f"simulation reverts: {refused}"
        key, in_flight, earlier = await self._liquidation_key(loan.loan_ref)
        if in_flight is not None:  # sent since this round read the keeper's open intents (by another keeper)
            return f"its liquidation {in_flight} is not settled yet"
        deferred = await self.funds.deferral("liquidate", earlier)
        if deferred is not None:  # the keeper's account cannot pay for gas now (``sender_funds``)
            return deferred
        if leader is not None:
            await leader.fence()
        try:
            await self.transactions.submit(key, call)
        except GasEstimationFailed as err:
            raise ChainError(f"{key}: {err}") from err
        sends.liquidations.append(_Submitted(loan.loan_ref, key, outcome))
        sends.spent[debt_asset] += repay
        return None

    async def _confirm_liquidations(self, submitted: Sequence[_Submitted], report: RoundReport) -> None:
        """Wait for the round's liquidations together (each for at most ``receipt_timeout``), and apply each receipt
        to the ledger."""
        confirmed = await asyncio.gather(*(self._confirm(sent.key) for sent in submitted), return_exceptions=True)
        for sent, tx_hash in zip(submitted, confirmed, strict=True):
            if isinstance(tx_hash, ChainError):  # reverted when mined, not confirmed in time: said, resumed later
                self._skip(report, sent.loan_ref, f"its transaction did not complete: {tx_hash}")
                continue
            if isinstance(tx_hash, BaseException):
                raise tx_hash
            outcome = sent.outcome
            report.sent.append(Sent(sent.loan_ref, "liquidate", tx_hash, outcome))
            log.info(
                "keeper on chain %s: liquidated loan %s in %s: repaid %s, seized %s%s",
                self.chain_id,
                sent.loan_ref,
                tx_hash,
                outcome.debt_repaid,
                outcome.collateral_seized,
                f", bad debt written off {outcome.bad_debt}" if outcome.bad_debt else "",
            )
            if outcome.bad_debt:
                log.warning(
                    "keeper on chain %s: loan %s ran out of collateral; %s of debt written off",
                    self.chain_id,
                    sent.loan_ref,
                    outcome.bad_debt,
                )

    async def _liquidation_key(self, ref: int) -> tuple[str, str | None, tuple[IntentRecord, ...]]:
        """The key of the loan's next liquidation, the key of its last one when that is still in flight (then none
        may be sent), and the liquidations settled before it, in order (what a round backs off by while the keeper's
        account cannot pay: ``sender_funds``). Two keepers that decide at once take the same key: the intent is
        created once, and the other's call resumes it (or conflicts with it), never a second liquidation. Every
        numbered liquidation stored is read (a missing number is no end: 0037 rekeyed each by the CollateralManager it
        was sent to)."""
        stem = f"{liquidation_intent_prefix(self.chain_id, self.chain.manager)}{ref}:n"
        stored = await self.transactions.store.numbered_intents(stem)
        for _, existing in stored:
            if existing.status not in TERMINAL_STATUSES:
                return existing.key, existing.key, ()
        number = stored[-1][0] + 1 if stored else 1
        return liquidation_intent_key(self.chain_id, self.chain.manager, ref, number), None, tuple(i for _, i in stored)
