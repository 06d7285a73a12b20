"""A lender's payments after a new deployment of the contracts on the chain, on the in-memory stores and an in-process
chain: the new deployment's CreditAggregator numbers its loans from 1 again, and its loan 9 is not the earlier
deployment's loan 9 — its payments are its own, towards its own disclosed total."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aggregator.loans import InMemoryLoanStore
from aggregator.offchain_payments import OffchainPayments
from aggregator.payment_records import InMemoryPaymentStore
from tests.support.relay_fakes import AGGREGATOR, ASSETS, CHAIN_NAME, USDC, FakeChain, FakeReceipts, event
from tests.unit.test_offchain_payments import SCHEDULED, SCHEDULED_LOAN, _amount_sent

pytestmark = pytest.mark.unit

#: the CreditAggregator of the earlier deployment on the chain
EARLIER = "0x" + "a1" * 20
EARLIER_LOAN = replace(SCHEDULED_LOAN, id="l-earlier", contract=EARLIER)
NEW_LOAN = replace(SCHEDULED_LOAN, id="l-new", quote_id="q2")


def _redeployed() -> tuple[OffchainPayments, FakeChain, InMemoryPaymentStore, InMemoryLoanStore, FakeReceipts]:
    """sim-bank's loan 9 of the earlier deployment (offer-earlier) and of the new one (offer-new), each with the
    two-installment schedule; the chain's deployment record names the earlier deployment until a test redeploys."""
    loans = InMemoryLoanStore()
    loans.disclosures.update({"q1": SCHEDULED, "q2": SCHEDULED})
    for offer_ref, loan in (("offer-earlier", EARLIER_LOAN), ("offer-new", NEW_LOAN)):
        loans.loans[loan.id] = loan
        loans.provider_refs[("sim-bank", offer_ref)] = loan.id
    chain, payments, receipts = FakeChain(address=EARLIER), InMemoryPaymentStore(), FakeReceipts()
    service = OffchainPayments(loans, payments, {CHAIN_NAME: chain.runtime()}, ASSETS, receipts, wait_seconds=1)
    return service, chain, payments, loans, receipts


def _mined(receipts: FakeReceipts, *numbers: int) -> None:
    for n in numbers:
        tx = "0x" + f"{n:064x}"
        receipts.events[tx] = [event("LoanRepaid", tx, loanId=9, interestPaid=0, principalPaid=USDC)]


async def test_a_new_deployments_loan_is_not_closed_by_the_earlier_deployments_payments() -> None:
    """The earlier deployment's loan 9 was paid as disclosed (51.00 + 50.50) and closed. Keyed by (chain, loan number)
    those payments were the new deployment's loan 9's too: its first installment "completed" the disclosed total,
    was sent as what the loan owed (100 USDC and a day's interest), and the loan closed with its collateral
    released."""
    service, chain, payments, loans, receipts = _redeployed()
    _mined(receipts, 1, 2, 3)
    chain.owed = (50 * USDC, 500_000)
    await service.record("sim-bank", "offer-earlier", "inst-1", "51.00")
    await service.record("sim-bank", "offer-earlier", "inst-2", "50.50")
    loans.loans["l-earlier"] = replace(EARLIER_LOAN, status="repaid")
    chain.address = AGGREGATOR  # the new deployment: its loan 9 owes 100 USDC
    chain.owed = (100 * USDC, 0)

    await service.record("sim-bank", "offer-new", "new-inst-1", "51.00")
    assert _amount_sent(chain.operator.submitted[-1][1]) == 51 * USDC, "sent as reported: the loan stays open"
    assert [(p.loan_id, p.contract, p.recorded_amount) for p in payments.tables.payments][-1] == (
        "l-new",
        AGGREGATOR,
        None,
    )
