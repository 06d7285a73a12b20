"""A lender's payments after a new deployment of the contracts on the chain, on the in-memory stores and an in-process
chain: the new deployment's CreditAggregator numbers its loans from 1 again, and its loan 9 is not the earlier
deployment's loan 9 — its payments are its own, towards its own disclosed total."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_utils.address import to_checksum_address

from aggregator.loans import InMemoryLoanStore
from aggregator.offchain_payments import OffchainPayments, payment_ref_hash, record_intent_key
from aggregator.payment_records import RECORDED, InMemoryPaymentStore
from chain.transactions import Call
from tests.support.relay_fakes import (
    AGGREGATOR,
    CHAIN_ID,
    USDC,
    FakeChain,
    FakeReceipts,
    Sent,
    event,
    offchain_payments,
)
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
    service, chain, payments, receipts = offchain_payments(
        ("offer-earlier", EARLIER_LOAN),
        ("offer-new", NEW_LOAN),
        disclosures={"q1": SCHEDULED, "q2": SCHEDULED},
        chain=FakeChain(address=EARLIER),
        loan_store=loans,
    )
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


async def test_a_reference_reused_for_the_new_deployments_loan_is_sent_to_it() -> None:
    """sim-bank names its first payment of each loan "pay-1". Under a key of (chain, loan number, reference) the new
    deployment's loan 9 found the earlier loan 9's payment and intent: answered confirmed with the earlier
    transaction, nothing sent (with the real transaction manager, an IntentConflict: a 503 for ever)."""
    service, chain, payments, _, receipts = _redeployed()
    _mined(receipts, 1, 2)
    chain.owed = (100 * USDC, 0)
    earlier = await service.record("sim-bank", "offer-earlier", "pay-1", "25.00")
    chain.address = AGGREGATOR

    new = await service.record("sim-bank", "offer-new", "pay-1", "40.00")
    reference = payment_ref_hash("sim-bank", "pay-1")
    assert new.tx_hash != earlier.tx_hash, "the new loan's payment is sent, not answered with the earlier one"
    assert [(key, _amount_sent(call)) for key, call in chain.operator.submitted] == [
        (record_intent_key(CHAIN_ID, EARLIER, 9, reference), 25 * USDC),
        (record_intent_key(CHAIN_ID, AGGREGATOR, 9, reference), 40 * USDC),
    ]
    assert [call.to for call, _ in chain.operator.sent.values()] == [to_checksum_address(EARLIER), AGGREGATOR]
    assert [(p.loan_id, p.amount, p.tx_hash) for p in payments.tables.payments] == [
        ("l-earlier", 25 * USDC, earlier.tx_hash),
        ("l-new", 40 * USDC, new.tx_hash),
    ]


@pytest.mark.parametrize("status", ["active", "repaid"])
async def test_a_payment_whose_attempts_under_the_new_contract_start_past_the_first_is_not_sent_again(
    status: str,
) -> None:
    """Before 0038 a payment's intents were keyed by (chain, loan number, reference): the earlier deployment's loan
    9's "pay-1", its first attempt not taken, was sent again as attempt 2 to the CreditAggregator of the day — the new
    deployment's, whose loan 9 it paid — and 0038 rekeyed each attempt by its contract: the new one holds attempt 2
    and no attempt 1. The lender's webhook repeated for the new loan's "pay-1" read the missing attempt 1 as nothing
    sent and sent the payment again (credited twice: the contract does not refuse a ``paymentRef`` it recorded), or,
    once attempt 2 had closed the loan, was refused with "nothing is left to record". It follows attempt 2's
    transaction now."""
    service, chain, payments, loans, receipts = _redeployed()
    loans.loans["l-new"] = replace(NEW_LOAN, status=status)
    chain.address = AGGREGATOR
    reference = payment_ref_hash("sim-bank", "pay-1")
    second = record_intent_key(CHAIN_ID, AGGREGATOR, 9, reference, 2)
    call = Call.function(chain.aggregator(), "recordOffchainRepayment", 9, 25 * USDC, reference)
    tx = "0x" + "22" * 32
    chain.operator.sent[second] = (call, Sent(tx, data="0x" + call.data.hex(), key=second))
    receipts.events[tx] = [event("LoanRepaid", tx, loanId=9, interestPaid=0, principalPaid=25 * USDC)]

    recorded = await service.record("sim-bank", "offer-new", "pay-1", "25.00")
    assert (recorded.status, recorded.tx_hash, recorded.principal_paid) == ("confirmed", tx, 25 * USDC)
    assert [key for key, _ in chain.operator.submitted] == [second], "no second transaction"
    assert [(p.loan_id, p.status, p.tx_hash) for p in payments.tables.payments] == [("l-new", RECORDED, tx)]
