"""A lender's reported payment on the in-memory loan and payment stores and an in-process chain: which payments are
recordable (and the webhook's status for the others), the payment kept as reported before anything is sent, one
``recordOffchainRepayment`` per (loan, reference), and the record settled with what the transaction did."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aggregator.loans import InMemoryLoanStore, LoanRecord
from aggregator.offchain_payments import OffchainPayments, PaymentNotRecordable, payment_ref_hash
from aggregator.payment_records import ACCEPTED, RECORDED, REFUSED, InMemoryPaymentStore, ReportedPayment
from chain.errors import ConfirmationTimeout, TransactionReverted
from tests.support.relay_fakes import (
    AGGREGATOR,
    ASSETS,
    CHAIN_ID,
    CHAIN_NAME,
    USDC,
    FakeChain,
    FakeReceipts,
    event,
)
from tests.support.relay_fakes import LOAN as BASE_LOAN

pytestmark = pytest.mark.unit

LOAN = replace(BASE_LOAN, provider_id="sim-bank", onchain_loan_id=9)
TX = "0x" + f"{1:064x}"


def _setup(*loans: tuple[str, LoanRecord]) -> tuple[OffchainPayments, FakeChain, InMemoryPaymentStore, FakeReceipts]:
    loans_store = InMemoryLoanStore()
    for offer_ref, loan in loans or (("offer-1", LOAN),):
        loans_store.loans[loan.id] = loan
        loans_store.provider_refs[(loan.provider_id or "", offer_ref)] = loan.id
    chain, payments, receipts = FakeChain(), InMemoryPaymentStore(), FakeReceipts()
    service = OffchainPayments(loans_store, payments, {CHAIN_NAME: chain.runtime()}, ASSETS, receipts, wait_seconds=1)
    return service, chain, payments, receipts


async def test_a_payment_is_kept_recorded_once_on_chain_and_settled() -> None:
    service, chain, payments, receipts = _setup()
    receipts.events[TX] = [
        event("LoanRepaid", TX, loanId=9, interestPaid=USDC, principalPaid=24 * USDC, outstandingPrincipal=76 * USDC)
    ]
    first = await service.record("sim-bank", "offer-1", "pay-1", "25.00", event_id="evt-1")
    again = await service.record("sim-bank", "offer-1", "pay-1", "25.00", event_id="evt-2")  # a repeated webhook

    assert first == again
    assert (first.status, first.tx_hash, first.interest_paid, first.principal_paid, first.closed) == (
        "confirmed",
        TX,
        USDC,
        24 * USDC,
        False,
    )
    reference = "0x" + payment_ref_hash("sim-bank", "pay-1").hex()
    [(intent, (call, _))] = chain.operator.sent.items()
    assert intent == f"offchain-repayment:{CHAIN_ID}:9:{reference}"
    assert call.to == AGGREGATOR
    assert chain.transactions.sent == {}, "the operator's account records it, not the relayer's"
    # the first report stands, settled with its transaction
    assert payments.tables.payments == [
        ReportedPayment("sim-bank", "pay-1", reference, "l1", CHAIN_ID, 9, 25 * USDC, "evt-1", RECORDED, TX, 7)
    ]


async def test_a_payment_not_mined_within_the_wait_stays_accepted_with_its_transaction() -> None:
    service, chain, payments, _ = _setup()
    chain.operator.outcome = ConfirmationTimeout("offchain-repayment", 1)
    recorded = await service.record("sim-bank", "offer-1", "pay-1", "1")
    assert (recorded.status, recorded.tx_hash) == ("submitted", TX)
    [payment] = payments.tables.payments
    assert (payment.status, payment.tx_hash, payment.block_number) == (ACCEPTED, TX, None)


async def test_a_payment_the_chain_refuses_is_kept_as_refused() -> None:
    service, chain, payments, receipts = _setup()
    chain.operator.outcome = TransactionReverted("execution reverted: LoanNotActive()")
    with pytest.raises(PaymentNotRecordable, match="LoanNotActive") as refused:
        await service.record("sim-bank", "offer-1", "pay-1", "1")
    assert refused.value.status == 409
    assert [(p.status, p.tx_hash) for p in payments.tables.payments] == [(REFUSED, None)]
    assert receipts.recorded == []


@pytest.mark.parametrize(
    ("offer_ref", "amount", "status", "message"),
    [
        ("offer-unknown", "1", 404, "no loan of sim-bank's offer offer-unknown"),
        ("offer-pool", "1", 409, "pool loan"),
        ("offer-far", "1", 409, "not configured here"),
        ("offer-foreign-asset", "1", 409, "asset is not one the platform lists"),
        ("offer-repaid", "1", 409, "is repaid: nothing is left to record"),
        ("offer-unopened", "1", 404, "no loan"),
        ("offer-1", "1.0000001", 422, "amount"),
        ("offer-1", "-1", 422, "amount"),
    ],
)
async def test_a_payment_that_cannot_be_recorded_is_refused_with_the_webhooks_status(
    offer_ref: str, amount: str, status: int, message: str
) -> None:
    service, chain, payments, _ = _setup(
        ("offer-1", LOAN),
        ("offer-pool", replace(LOAN, id="pool", pool="0x" + "d0" * 20)),
        ("offer-far", replace(LOAN, id="far", chain_name="elsewhere")),
        ("offer-foreign-asset", replace(LOAN, id="foreign", asset_address="0x" + "ee" * 20)),
        ("offer-repaid", replace(LOAN, id="repaid", status="repaid")),
        ("offer-unopened", replace(LOAN, id="unopened", onchain_loan_id=None)),
    )
    with pytest.raises(PaymentNotRecordable, match=message) as refused:
        await service.record("sim-bank", offer_ref, "pay-1", amount)
    assert refused.value.status == status
    assert payments.tables.payments == []
    assert chain.operator.sent == {}
