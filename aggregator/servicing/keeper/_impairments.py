"""Impairment: a pool loan the keeper cannot liquidate now has its expected loss counted by the pool at once."""

from __future__ import annotations

from aggregator.servicing.health import BPS, Position, expected_loss
from aggregator.servicing.keeper._core import _Core, log
from aggregator.servicing.keeper._reads import _Read
from aggregator.servicing.keeper._report import RoundReport, Sent
from aggregator.servicing.leased import Leader
from aggregator.servicing.repository import OpenLoan
from chain.transactions import Call

IMPAIR_TOLERANCE_BPS = 100  # re-impair when the pool's figure is off by more than 1% of the debt


class _Impairing(_Core):
    async def _impair_if_off(
        self, loan: OpenLoan, position: Position, read: _Read, report: RoundReport, leader: Leader | None
    ) -> None:
        expected = expected_loss(position)
        recorded = read.impairments.get(loan.loan_ref, 0)
        if abs(expected - recorded) * BPS <= position.debt * IMPAIR_TOLERANCE_BPS:
            return
        call = Call.function(self._aggregator_abi, "impair", loan.loan_ref)
        refused = await self._simulate(call)
        if refused is not None:
            log.warning("keeper on chain %s: cannot impair loan %s: %s", self.chain_id, loan.loan_ref, refused)
            return
        deferred = await self.funds.deferral("impair", ())  # keyed by the block read: no earlier attempts to count
        if deferred is not None:
            report.skipped[loan.loan_ref] += f"; {deferred}"
            return
        if leader is not None:
            await leader.fence()
        tx_hash = await self._send(f"impair:{self.chain_id}:{loan.loan_ref}:{read.prices.block}", call)
        report.sent.append(Sent(loan.loan_ref, "impair", tx_hash))
        log.info(
            "keeper on chain %s: impaired loan %s (expected loss %s, was %s) in %s",
            self.chain_id,
            loan.loan_ref,
            expected,
            recorded,
            tx_hash,
        )
