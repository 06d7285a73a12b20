"""The keeper's round: read, assess, liquidate or impair each loan, then sweep unclaimed collateral; run under the
chain's keeper lease."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from aggregator.servicing.health import assess, liquidatable
from aggregator.servicing.keeper._claims import _Claiming
from aggregator.servicing.keeper._impairments import _Impairing
from aggregator.servicing.keeper._liquidations import _Liquidating, _Sends
from aggregator.servicing.keeper._reads import _Read, _Reading
from aggregator.servicing.keeper._report import RoundReport
from aggregator.servicing.leased import Leader, run_leased
from aggregator.servicing.repository import OpenLoan, left_alone, readable, serviced
from chain.errors import ChainError

LEASE_KIND = "keeper"


class Keeper(_Reading, _Liquidating, _Impairing, _Claiming):
    """The liquidation keeper of one chain: what a round does is said in ``aggregator.servicing.keeper``."""

    async def run(self, stop: asyncio.Event) -> None:
        """Keep every open loan of this chain healthy while holding the chain's keeper lease, until ``stop``."""
        await run_leased(
            LEASE_KIND,
            self.chain_id,
            self.leases,
            self.holder,
            self.settings.ttl,
            self.settings.interval,
            self.run_round,
            stop,
        )

    async def run_round(self, leader: Leader | None = None) -> RoundReport:
        """Read, assess and act once. ``leader``: the held lease, fenced before each transaction (None: tests and
        one-off runs that hold no lease)."""
        self.funds.new_round()
        self.unserviceable.new_round()
        loans, unreadable = readable(await asyncio.to_thread(self._open_loans))
        loans, unserviced = serviced(loans)
        block = await self.client.rpc("eth_getBlockByNumber", "latest", False)
        number, timestamp = int(block["number"], 16), int(block["timestamp"], 16)
        read = replace(await self._read(loans, number, timestamp), in_flight=await self._liquidations_in_flight())
        report, sends = RoundReport(number, timestamp, read.paused), _Sends()
        for loan in unreadable:  # its ledger row does not read: nothing of it can be judged
            self._unserviceable(report, loan, f"its ledger row cannot be read: {loan.unreadable}")
        for loan in unserviced:  # unfunded, or its funding pending: its collateral is not the lender's to take
            self._skip(report, loan.loan_ref, str(left_alone(loan)))
        for loan in loans:
            if loan.loan_ref in read.unreadable:  # the chain answers nothing usable for it: the others go on
                self._unserviceable(report, loan, read.unreadable[loan.loan_ref])
                continue
            try:
                await self._service(loan, read, report, leader, sends)
            except ChainError as err:  # refused by the node, not confirmed in time: the other loans go on
                self.funds.saw(err)
                self._skip(report, loan.loan_ref, f"its transaction did not complete: {err}")
        await self._confirm_liquidations(sends.liquidations, report)
        for claimable in await asyncio.to_thread(self._unclaimed):
            await self._claim(claimable, report, leader)
        await self.funds.end_round()
        self.unserviceable.end_round()
        return report

    async def _service(
        self, loan: OpenLoan, read: _Read, report: RoundReport, leader: Leader | None, sends: _Sends
    ) -> None:
        ref = loan.loan_ref
        position = self._position(loan, read)
        if isinstance(position, str):  # no usable price of one of its assets
            self._unserviceable(report, loan, position)
            return
        assessment = assess(position, read.thresholds)
        report.health[ref] = assessment.health_factor
        if not liquidatable(position, assessment):
            return
        reason = await self._try_liquidate(loan, position, read, leader, sends)
        if reason is None:
            return
        self._skip(report, ref, reason)
        if loan.pool:
            await self._impair_if_off(loan, position, read, report, leader)
