"""A lender's payment reported while another of the platform's processes holds the loan's claim
(``aggregator.loan_locks.LoanClaims``, kind ``offchain-payment:<loan id>``): waited for up to the service's wait,
then answered ``PaymentNotSent`` (503, report it again) with nothing kept or sent; reported again once the claim is
given up, it is sent once and the claim given up after it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from aggregator.errors import PaymentNotSent
from aggregator.outbox_memory import InMemoryLeases
from tests.support.relay_fakes import LENDER_LOAN as LOAN
from tests.support.relay_fakes import USDC, event, offchain_payments

pytestmark = pytest.mark.unit

TX = "0x" + f"{1:064x}"
CLAIM = f"offchain-payment:{LOAN.id}"


async def test_a_payment_reported_while_another_process_holds_the_loan_is_not_sent_until_it_lets_go() -> None:
    leases = InMemoryLeases()
    service, chain, payments, receipts = offchain_payments(leases=leases)
    receipts.events[TX] = [
        event("LoanRepaid", TX, loanId=9, interestPaid=USDC, principalPaid=24 * USDC, outstandingPrincipal=76 * USDC)
    ]
    other = await leases.acquire(CLAIM, 0, "offchain-payment-of-another-process", timedelta(seconds=30))
    assert other is not None

    with pytest.raises(PaymentNotSent, match="report it again"):
        await service.record("sim-bank", "offer-1", "pay-1", "25.00", event_id="evt-1")
    assert (chain.operator.submitted, payments.tables.payments) == ([], []), "nothing decided, kept or sent"
    assert leases.held[(CLAIM, 0)] == other, "the other process's claim untouched"

    await leases.release(other)
    recorded = await service.record("sim-bank", "offer-1", "pay-1", "25.00", event_id="evt-2")
    assert (recorded.status, recorded.tx_hash) == ("confirmed", TX)
    assert len(chain.operator.submitted) == 1
    assert leases.held == {}, "given up once sent"
