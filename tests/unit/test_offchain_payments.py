"""A lender's reported payment on the in-memory loan and payment stores and an in-process chain: which payments are
recordable (and the webhook's status for the others), the payment kept as reported before anything is sent, one
``recordOffchainRepayment`` per (loan, reference), and the record settled with what the transaction did."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from eth_account import Account
from web3 import Web3

from aggregator.errors import PaymentNotSent
from aggregator.loans import LoanRecord
from aggregator.offchain_payments import (
    PaymentNotRecordable,
    closing_amount,
    payment_ref_hash,
    record_intent_key,
)
from aggregator.payment_records import ACCEPTED, RECORDED, REFUSED, ReportedPayment
from chain.artifacts import load_artifact
from chain.client import ChainClient
from chain.errors import (
    ChainError,
    ConfirmationTimeout,
    FeeCapExceeded,
    GasEstimationFailed,
    IntentConflict,
    TransactionRejected,
    TransactionReverted,
)
from chain.signers import LocalSigner
from chain.transactions import Call, TransactionManager
from store.chain import FAILED, SqlChainStore
from store.db import Database
from tests.support.relay_fakes import (
    AGGREGATOR,
    CHAIN_ID,
    CHAIN_NAME,
    USDC,
    FakeSender,
    Sent,
    event,
    offchain_payments,
)
from tests.support.relay_fakes import LENDER_LOAN as LOAN

pytestmark = pytest.mark.unit

TX = "0x" + f"{1:064x}"


async def test_a_payment_is_kept_recorded_once_on_chain_and_settled() -> None:
    service, chain, payments, receipts = offchain_payments()
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
    assert intent == f"offchain-repayment:{CHAIN_ID}:{AGGREGATOR}:9:{reference}"
    assert call.to == AGGREGATOR
    assert chain.transactions.sent == {}, "the operator's account records it, not the relayer's"
    # the first report stands, settled with its transaction
    assert payments.tables.payments == [
        ReportedPayment(
            "sim-bank", "pay-1", reference, "l1", CHAIN_ID, AGGREGATOR, 9, 25 * USDC, "evt-1", RECORDED, TX, 7
        )
    ]


async def test_a_payment_not_mined_within_the_wait_stays_accepted_with_its_transaction() -> None:
    service, chain, payments, _ = offchain_payments()
    chain.operator.outcome = ConfirmationTimeout("offchain-repayment", 1)
    recorded = await service.record("sim-bank", "offer-1", "pay-1", "1")
    assert (recorded.status, recorded.tx_hash) == ("submitted", TX)
    [payment] = payments.tables.payments
    assert (payment.status, payment.tx_hash, payment.block_number) == (ACCEPTED, TX, None)


async def test_a_payment_the_chain_refuses_is_kept_as_refused() -> None:
    service, chain, payments, receipts = offchain_payments()
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
        # recorded on the chain's newest CreditAggregator, it would be that one's loan 9
        ("offer-earlier", "1", 409, "earlier deployment of the contracts on ethereum-local"),
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
    service, chain, payments, _ = offchain_payments(
        ("offer-1", LOAN),
        ("offer-pool", replace(LOAN, id="pool", pool="0x" + "d0" * 20)),
        ("offer-far", replace(LOAN, id="far", chain_name="elsewhere")),
        ("offer-earlier", replace(LOAN, id="earlier", contract="0x" + "a1" * 20)),
        ("offer-foreign-asset", replace(LOAN, id="foreign", asset_address="0x" + "ee" * 20)),
        ("offer-repaid", replace(LOAN, id="repaid", status="repaid")),
        ("offer-unopened", replace(LOAN, id="unopened", onchain_loan_id=None)),
    )
    with pytest.raises(PaymentNotRecordable, match=message) as refused:
        await service.record("sim-bank", offer_ref, "pay-1", amount)
    assert refused.value.status == status
    assert payments.tables.payments == []
    assert chain.operator.sent == {}


# Two installments disclosed with the loan's quote: 101.50 in all.
SCHEDULED = {
    "assetDecimals": 6,
    "payments": [
        {"number": 1, "due": "2027-01-01", "amount": "51.00", "principal": "50.00", "interest": "1.00"},
        {"number": 2, "due": "2027-02-01", "amount": "50.50", "principal": "50.00", "interest": "0.50"},
    ],
}
SCHEDULED_LOAN = replace(LOAN, quote_id="q1", rate_bps=1_200)


def _amount_sent(call: Call) -> int:
    aggregator = Web3().eth.contract(abi=load_artifact("CreditAggregator").abi)
    function, args = aggregator.decode_function_input(call.data)
    assert function.fn_name == "recordOffchainRepayment"
    return int(args["amount"])


async def test_the_payment_completing_the_disclosed_total_is_sent_as_what_the_loan_owes() -> None:
    """The lender reports both installments as scheduled; the chain's per-second interest left 50.68 owed when the
    second (50.50) arrives, so it is sent as 50.68 plus a day's interest at 12% and the loan closes. A repeated
    report sends the same call, whatever the chain owes by then."""
    service, chain, payments, receipts = offchain_payments(("offer-1", SCHEDULED_LOAN), disclosures={"q1": SCHEDULED})
    receipts.events["0x" + f"{1:064x}"] = [
        event("LoanRepaid", "0x" + f"{1:064x}", loanId=9, interestPaid=USDC, principalPaid=50 * USDC)
    ]
    receipts.events["0x" + f"{2:064x}"] = [
        event("LoanRepaid", "0x" + f"{2:064x}", loanId=9, interestPaid=680_000, principalPaid=50 * USDC),
        event("LoanClosed", "0x" + f"{2:064x}", loanId=9),
    ]
    chain.owed = (50 * USDC, 500_000)  # what the first installment's report finds: not the last
    await service.record("sim-bank", "offer-1", "pay-1", "51.00")
    chain.owed = (50 * USDC, 680_000)
    last = await service.record("sim-bank", "offer-1", "pay-2", "50.50")
    chain.owed = (50 * USDC, 700_000)  # a day later: the repeat sends what the first report decided
    again = await service.record("sim-bank", "offer-1", "pay-2", "50.50")

    closing = 50_680_000 + 16_662  # a day at 12% on 50.68, rounded up
    assert closing_amount(50_680_000, 1_200) == closing
    assert last.closed
    assert again == last
    assert [_amount_sent(call) for _, call in chain.operator.submitted] == [51 * USDC, closing, closing]
    assert [(p.amount, p.recorded_amount, p.sent_amount) for p in payments.tables.payments] == [
        (51 * USDC, None, 51 * USDC),
        (50_500_000, closing, closing),
    ]


@pytest.mark.parametrize(
    ("loan", "disclosures", "owed", "why"),
    [
        (SCHEDULED_LOAN, {"q1": SCHEDULED}, (60 * USDC, 0), "short of the total of payments"),
        (LOAN, {}, (60 * USDC, 0), "no quote of ours"),
        (SCHEDULED_LOAN, {"q1": {"assetDecimals": 6}}, (60 * USDC, 0), "a disclosure without a schedule"),
        (SCHEDULED_LOAN, {"q1": SCHEDULED}, (20 * USDC, 0), "the payment already pays what is owed"),
    ],
)
async def test_a_payment_is_sent_as_reported_unless_it_completes_a_disclosed_total_short_on_chain(
    loan: LoanRecord, disclosures: dict[str, dict[str, Any]], owed: tuple[int, int], why: str
) -> None:
    service, chain, payments, receipts = offchain_payments(("offer-1", loan), disclosures=disclosures)
    receipts.events["0x" + f"{1:064x}"] = [
        event("LoanRepaid", "0x" + f"{1:064x}", loanId=9, interestPaid=0, principalPaid=USDC)
    ]
    chain.owed = owed
    reported = "51.00" if why == "short of the total of payments" else "101.50"
    await service.record("sim-bank", "offer-1", "pay-1", reported)
    [(_, call)] = chain.operator.submitted
    assert _amount_sent(call) == int(reported.replace(".", "")) * 10**4, why
    assert payments.tables.payments[0].recorded_amount is None


async def test_a_repeated_report_with_another_amount_sends_the_first_reports_call() -> None:
    """The first report stands: the same reference reported again with another amount is the same transaction
    (before, it was a call of another payload under the same intent key, which the transaction manager refuses)."""
    service, chain, _, receipts = offchain_payments()
    receipts.events["0x" + f"{1:064x}"] = [
        event("LoanRepaid", "0x" + f"{1:064x}", loanId=9, interestPaid=0, principalPaid=USDC)
    ]
    await service.record("sim-bank", "offer-1", "pay-1", "25.00")
    await service.record("sim-bank", "offer-1", "pay-1", "26.00")
    assert [_amount_sent(call) for _, call in chain.operator.submitted] == [25 * USDC, 25 * USDC]


async def test_a_confirmed_payment_whose_receipt_was_not_read_is_answered_confirmed() -> None:
    """No LoanRepaid in the events read from the receipt (its logs not decoded here): ``next()`` without a default
    raised StopIteration inside the coroutine, a RuntimeError and a 500 for a payment the chain had recorded."""
    service, _, payments, _ = offchain_payments()
    recorded = await service.record("sim-bank", "offer-1", "pay-1", "25.00")
    assert (recorded.status, recorded.tx_hash, recorded.closed) == ("confirmed", "0x" + f"{1:064x}", False)
    assert [p.status for p in payments.tables.payments] == [RECORDED]


async def test_a_payoff_the_lender_reports_paid_in_full_is_sent_as_what_the_loan_owes() -> None:
    """An early payoff under the lender's terms: 60.00, where the chain owes 60.40. Without the flag it is sent as
    reported and leaves 0.40 owed for ever; with it, as what the loan owes plus a day's interest."""
    service, chain, payments, receipts = offchain_payments(("offer-1", SCHEDULED_LOAN), disclosures={"q1": SCHEDULED})
    for n in (1, 2):
        receipts.events["0x" + f"{n:064x}"] = [
            event("LoanRepaid", "0x" + f"{n:064x}", loanId=9, interestPaid=0, principalPaid=USDC)
        ]
    chain.owed = (60 * USDC, 400_000)
    await service.record("sim-bank", "offer-1", "partial", "10.00")  # not a payoff: as reported
    await service.record("sim-bank", "offer-1", "payoff", "60.00", paid_in_full=True)
    closing = closing_amount(60_400_000, 1_200)
    assert [_amount_sent(call) for _, call in chain.operator.submitted] == [10 * USDC, closing]
    assert [p.recorded_amount for p in payments.tables.payments] == [None, closing]


class _RefusingNode:
    """A node whose gas estimation fails: with ``answer``'s error, by default a revert (the loan no longer takes
    payments)."""

    def __init__(self, error: dict[str, Any] | None = None) -> None:
        self.error = error or {"code": 3, "message": "execution reverted: LoanNotActive()"}

    async def make_request(self, method: str, params: Any) -> dict[str, Any]:
        assert method == "eth_estimateGas"
        return {"error": self.error}


OPERATOR_KEY = Account.create()


def _operator(store: SqlChainStore, node: _RefusingNode | None = None) -> TransactionManager:
    """One process's operator: a real transaction manager on the shared intent store, in front of ``node``."""
    config = SimpleNamespace(chain_id=CHAIN_ID, block_time_seconds=1, confirmations=1, max_fee_gwei=100)
    client = SimpleNamespace(config=config, name=CHAIN_NAME, provider=node or _RefusingNode())
    return TransactionManager(cast(ChainClient, client), LocalSigner(OPERATOR_KEY), store)


async def test_a_payment_the_chain_refused_is_a_409_to_the_retry_in_another_process_too(tmp_path: Path) -> None:
    """The first report is refused (409) and its intent kept failed; the lender's retry, answered by another process
    (or this one restarted), found that failed intent: TransactionRejected, a ChainError, so a 503 "ask again"
    for ever."""
    database = Database(f"sqlite:///{tmp_path / 'chain.db'}")
    database.migrate()
    store = SqlChainStore(database.sessions)
    service, chain, payments, _ = offchain_payments()
    try:
        for process in (1, 2):
            chain.operator = cast(Any, _operator(store))
            with pytest.raises(PaymentNotRecordable, match="the chain refused") as refused:
                await service.record("sim-bank", "offer-1", "pay-1", "25.00", event_id=f"evt-{process}")
            assert refused.value.status == 409, process
    finally:
        database.dispose()
    assert [p.status for p in payments.tables.payments] == [REFUSED]


async def test_two_last_payments_reported_at_once_are_decided_one_after_the_other() -> None:
    """Both installments reported at the same moment, each short of the 101.50 total alone: decided side by side,
    each saw the other missing and neither was sent as paying the loan in full, which then never closed. Decided one
    after the other, the second one pays it in full."""
    service, chain, payments, receipts = offchain_payments(("offer-1", SCHEDULED_LOAN), disclosures={"q1": SCHEDULED})
    for n in (1, 2):
        receipts.events["0x" + f"{n:064x}"] = [
            event("LoanRepaid", "0x" + f"{n:064x}", loanId=9, interestPaid=0, principalPaid=USDC)
        ]
    chain.owed = (100 * USDC, 2_000_000)
    await asyncio.gather(
        service.record("sim-bank", "offer-1", "pay-1", "51.00"), service.record("sim-bank", "offer-1", "pay-2", "50.50")
    )
    decided = sorted((p.payment_ref, p.recorded_amount) for p in payments.tables.payments)
    assert [amount is not None for _, amount in decided].count(True) == 1, decided


def _at(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


@pytest.mark.parametrize(
    ("second_paid", "owed", "closes", "why"),
    [
        ("2027-02-01T23:59:59+00:00", (50 * USDC, 2_000_000), True, "on its due date, UTC: paid as disclosed"),
        ("2027-02-01T20:00:00-05:00", (50 * USDC, 2_000_000), False, "01:00 UTC the day after, 1.50 short"),
        ("2027-02-02T05:00:00+00:00", (50 * USDC, 510_000), True, "5 hours late, 0.01 short: within a day's interest"),
        ("2027-08-01T12:00:00+00:00", (50 * USDC, 3_000_000), False, "the disclosed total paid 181 days late"),
    ],
)
async def test_the_payment_completing_the_disclosed_total_closes_the_loan_only_when_paid_as_disclosed(
    second_paid: str, owed: tuple[int, int], closes: bool, why: str
) -> None:
    """The lender's dates (``occurred_at``) decide: the disclosed total paid late is sent as reported, and the
    interest the chain went on charging on what was unpaid stays owed (before, the loan was closed with it and the
    collateral released, however late). A shortfall of at most a day's interest at the loan's rate still closes it."""
    service, chain, payments, _ = offchain_payments(("offer-1", SCHEDULED_LOAN), disclosures={"q1": SCHEDULED})
    chain.owed = (51 * USDC, 0)
    await service.record("sim-bank", "offer-1", "pay-1", "51.00", occurred_at=_at("2027-01-01T10:00:00+00:00"))
    chain.owed = owed
    await service.record("sim-bank", "offer-1", "pay-2", "50.50", occurred_at=_at(second_paid))

    sent = _amount_sent(chain.operator.submitted[-1][1])
    closing = closing_amount(sum(owed), 1_200)
    assert (sent, payments.tables.payments[-1].recorded_amount) == (
        (closing, closing) if closes else (50_500_000, None)
    ), why


async def test_an_earlier_installment_paid_late_by_its_webhooks_date_leaves_the_remainder_owed() -> None:
    """The first installment's date is its webhook's ``occurred_at`` (kept with the event that reported it): paid a
    month late, the loan was not paid as disclosed though the last installment came on time."""
    service, chain, payments, _ = offchain_payments(("offer-1", SCHEDULED_LOAN), disclosures={"q1": SCHEDULED})
    payments.tables.occurred[("sim-bank", "evt-1")] = _at("2027-01-31T09:00:00+00:00")  # due 2027-01-01
    chain.owed = (51 * USDC, 0)
    await service.record("sim-bank", "offer-1", "pay-1", "51.00", event_id="evt-1")
    chain.owed = (50 * USDC, 1_200_000)
    await service.record("sim-bank", "offer-1", "pay-2", "50.50", occurred_at=_at("2027-02-01T09:00:00+00:00"))
    assert _amount_sent(chain.operator.submitted[-1][1]) == 50_500_000
    assert payments.tables.payments[-1].recorded_amount is None


async def test_a_late_payoff_the_lender_reports_paid_in_full_still_closes_the_loan() -> None:
    """``paid_in_full`` is the lender's word that nothing more is owed (the loan is its money): it closes the loan
    whenever the payment was made."""
    service, chain, payments, _ = offchain_payments(("offer-1", SCHEDULED_LOAN), disclosures={"q1": SCHEDULED})
    chain.owed = (100 * USDC, 9 * USDC)
    late = _at("2027-09-01T12:00:00+00:00")
    await service.record("sim-bank", "offer-1", "payoff", "101.50", paid_in_full=True, occurred_at=late)
    closing = closing_amount(109 * USDC, 1_200)
    assert _amount_sent(chain.operator.submitted[-1][1]) == closing
    assert payments.tables.payments[-1].recorded_amount == closing


@pytest.mark.parametrize(
    "not_taken",
    [
        TransactionRejected("insufficient funds for gas * price + value", "offchain-repayment"),
        FeeCapExceeded("the market asks 900 gwei, above the 100 gwei cap"),
        # a gas estimate the provider did not answer: no revert data, no "execution reverted"
        GasEstimationFailed("gas estimate failed on ethereum-local: rate limit exceeded"),
    ],
)
async def test_a_payment_the_node_did_not_take_is_kept_and_sent_again_under_a_new_attempt(
    not_taken: ChainError,
) -> None:
    """The operator's account out of gas: the node refuses the transaction, nothing is mined. Before, the payment was
    settled refused under an intent key that never changes, a 409, and its retry the same 409 for ever. Now it stays
    accepted, the answer is 503 (report it again), and the retry is sent under the next attempt's intent."""
    service, chain, payments, receipts = offchain_payments()
    sent = "0x" + f"{2:064x}"  # the fake's second intent: the first was kept failed
    receipts.events[sent] = [event("LoanRepaid", sent, loanId=9, interestPaid=0, principalPaid=25 * USDC)]
    chain.operator.refuse = not_taken
    with pytest.raises(PaymentNotSent, match=f"not taken by {CHAIN_NAME}"):
        await service.record("sim-bank", "offer-1", "pay-1", "25.00", event_id="evt-1")
    assert [p.status for p in payments.tables.payments] == [ACCEPTED]

    chain.operator.refuse = None  # the operator's account topped up
    again = await service.record("sim-bank", "offer-1", "pay-1", "25.00", event_id="evt-2")
    assert (again.status, again.principal_paid) == ("confirmed", 25 * USDC)
    first = record_intent_key(CHAIN_ID, AGGREGATOR, 9, payment_ref_hash("sim-bank", "pay-1"))
    assert [key for key, _ in chain.operator.submitted] == [first, first + ":2"]
    assert [(p.status, p.tx_hash) for p in payments.tables.payments] == [(RECORDED, sent)]


async def test_a_payment_the_contract_refused_is_not_sent_again() -> None:
    """A revert is final: the retry is answered 409 with the refusal, and no attempt is sent again."""
    service, chain, payments, _ = offchain_payments()
    chain.operator.refuse = GasEstimationFailed("execution reverted: LoanNotActive()")
    for _ in range(2):
        with pytest.raises(PaymentNotRecordable, match="LoanNotActive") as refused:
            await service.record("sim-bank", "offer-1", "pay-1", "25.00")
        assert refused.value.status == 409
    assert len(chain.operator.submitted) == 1
    assert [p.status for p in payments.tables.payments] == [REFUSED]


async def test_a_payoff_retried_days_later_is_sent_as_what_the_loan_owes_then() -> None:
    """The last installment completes the disclosed total on time, but the operator's account is out of gas (503).
    Topped up ten days later, the lender's retry was sent with the amount worked out at the first report: ten days of
    interest short, the loan stayed open and went past due. The decision is kept, not the amount: each new attempt
    is sent as what the loan owes when it is sent; a repeat of an attempt sent already sends the same call."""
    service, chain, payments, receipts = offchain_payments(("offer-1", SCHEDULED_LOAN), disclosures={"q1": SCHEDULED})
    for n in (1, 3):
        receipts.events["0x" + f"{n:064x}"] = [
            event("LoanRepaid", "0x" + f"{n:064x}", loanId=9, interestPaid=0, principalPaid=USDC)
        ]
    chain.owed = (50 * USDC, 500_000)
    await service.record("sim-bank", "offer-1", "pay-1", "51.00")
    chain.owed = (50 * USDC, 680_000)
    chain.operator.refuse = TransactionRejected("insufficient funds for gas * price + value", "offchain-repayment")
    with pytest.raises(PaymentNotSent):
        await service.record("sim-bank", "offer-1", "pay-2", "50.50")
    chain.operator.refuse = None
    ten_days_later = (50 * USDC, 680_000 + 164_384)  # ten days more at 12% on 50.00
    chain.owed = ten_days_later
    await service.record("sim-bank", "offer-1", "pay-2", "50.50")
    chain.owed = (50 * USDC, 700_000 + 164_384)  # a day later still: the repeat is the same transaction
    await service.record("sim-bank", "offer-1", "pay-2", "50.50")

    first, retried = closing_amount(50_680_000, 1_200), closing_amount(sum(ten_days_later), 1_200)
    assert [_amount_sent(call) for _, call in chain.operator.submitted] == [51 * USDC, first, retried, retried]
    assert retried >= sum(ten_days_later)
    assert [(p.payment_ref, p.closes_loan, p.recorded_amount, p.status) for p in payments.tables.payments] == [
        ("pay-1", False, None, RECORDED),
        ("pay-2", True, retried, RECORDED),
    ]


async def test_a_payoff_kept_before_0038_without_a_recorded_amount_is_decided_again_on_its_retry() -> None:
    """The code before 0038 decided a payoff reported with at least what the loan owed as closing it, and kept no
    ``recorded_amount`` for it (the amount reported covered it); 0038 kept as closing only the payments with one. The
    payoff's first attempt not taken, its retry ten days later was sent as the amount reported: ten days of interest
    short, the loan left open. A payment still accepted with no attempt taken is decided again, as a first report."""
    service, chain, payments, receipts = offchain_payments(("offer-1", SCHEDULED_LOAN), disclosures={"q1": SCHEDULED})
    reference = payment_ref_hash("sim-bank", "payoff")
    kept = ReportedPayment("sim-bank", "payoff", "0x" + reference.hex(), "l1", CHAIN_ID, AGGREGATOR, 9, 101 * USDC)
    payments.tables.payments.append(kept)  # as 0038 left it: accepted, closes_loan false, no recorded_amount
    payments.tables.accepted[("l1", kept.reference)] = datetime.now(UTC)
    first = record_intent_key(CHAIN_ID, AGGREGATOR, 9, reference)
    call = Call.function(chain.aggregator(), "recordOffchainRepayment", 9, 101 * USDC, reference)
    chain.operator.sent[first] = (call, Sent("", status=FAILED, error="insufficient funds", key=first))
    tx = "0x" + f"{2:064x}"
    receipts.events[tx] = [event("LoanRepaid", tx, loanId=9, interestPaid=USDC, principalPaid=100 * USDC)]
    chain.owed = (100 * USDC, 1_400_000)  # ten days on: 101.40 owed, more than the 101.00 reported

    await service.record("sim-bank", "offer-1", "payoff", "101.00", paid_in_full=True)
    closing = closing_amount(101_400_000, 1_200)
    assert [(key, _amount_sent(call)) for key, call in chain.operator.submitted] == [(f"{first}:2", closing)]
    assert [(p.closes_loan, p.recorded_amount, p.status) for p in payments.tables.payments] == [
        (True, closing, RECORDED)
    ]


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        ({"code": -32005, "message": "rate limit exceeded"}, False),
        ({"code": -32603, "message": "internal error"}, False),
        ({"code": 3, "message": "execution reverted: LoanNotActive()"}, True),
        ({"code": -32000, "message": "execution reverted"}, True),  # a revert without a reason
        ({"code": 3, "message": "VM Exception while processing transaction", "data": "0x0d2d5a3f"}, True),
    ],
)
async def test_only_a_gas_estimate_that_reverts_refuses_the_payment_for_good(
    tmp_path: Path, error: dict[str, Any], refused: bool
) -> None:
    """Any failed gas estimate settled the payment refused, for good: a provider's rate limit or internal error too,
    and the lender's every retry was answered 409. Only the node's word that the call reverts (revert data, or
    "execution reverted") is final; otherwise the payment is kept, 503, and the next report is the next attempt."""
    database = Database(f"sqlite:///{tmp_path / 'chain.db'}")
    database.migrate()
    service, chain, payments, _ = offchain_payments()
    node = _RefusingNode(error)
    chain.operator = cast(Any, _operator(SqlChainStore(database.sessions), node))
    try:
        if refused:
            with pytest.raises(PaymentNotRecordable, match="the chain refused") as answer:
                await service.record("sim-bank", "offer-1", "pay-1", "25.00")
            assert answer.value.status == 409
        else:
            with pytest.raises(PaymentNotSent, match="GasEstimationFailed"):
                await service.record("sim-bank", "offer-1", "pay-1", "25.00")
            node.error = {"code": 3, "message": "execution reverted: LoanNotActive()"}
            with pytest.raises(PaymentNotRecordable, match="LoanNotActive"):  # the next attempt is sent, and judged
                await service.record("sim-bank", "offer-1", "pay-1", "25.00")
    finally:
        database.dispose()
    assert [p.status for p in payments.tables.payments] == [REFUSED]


@dataclass
class _RacedOperator(FakeSender):
    """The operator of this process, raced by another replica's: the other sends each new intent first, with
    ``theirs`` as the amount (what it worked out from what the loan owed a moment before); a call of another amount
    under the key then meets ``IntentConflict``, as the transaction manager answers it."""

    theirs: int = 0

    async def submit(self, key: str, call: Call) -> Sent:
        if key not in self.sent:
            data = call.data[:36] + self.theirs.to_bytes(32, "big") + call.data[68:]  # (loanId, amount, paymentRef)
            self.sent[key] = (
                replace(call, data=data),
                Sent("0x" + f"{len(self.sent) + 1:064x}", data="0x" + data.hex(), key=key),
            )
        if self.sent[key][0] != call:
            self.submitted.append((key, call))
            raise IntentConflict(key)
        return await super().submit(key, call)


async def test_a_payoff_sent_first_by_another_replica_is_kept_with_the_amount_it_was_sent_with() -> None:
    """Two replicas report one payoff at once: each works out what the loan owes plus a day's interest, a moment
    apart, and keeps it before sending. The first's transaction is the attempt's; the second met IntentConflict and
    answered 503, its own amount kept — a ``recorded_amount`` the chain never recorded. Now it keeps the amount the
    attempt was sent with and answers from that transaction."""
    service, chain, payments, receipts = offchain_payments(("offer-1", SCHEDULED_LOAN), disclosures={"q1": SCHEDULED})
    chain.owed = (60 * USDC, 400_000)
    ours, theirs = closing_amount(60_400_000, 1_200), closing_amount(60_399_000, 1_200)
    chain.operator = _RacedOperator(theirs=theirs)
    receipts.events[TX] = [event("LoanRepaid", TX, loanId=9, interestPaid=400_000, principalPaid=60 * USDC)]

    recorded = await service.record("sim-bank", "offer-1", "payoff", "60.00", paid_in_full=True)
    assert (recorded.status, recorded.tx_hash, recorded.principal_paid) == ("confirmed", TX, 60 * USDC)
    assert [_amount_sent(call) for _, call in chain.operator.submitted] == [ours, theirs]
    assert [(p.recorded_amount, p.status, p.tx_hash) for p in payments.tables.payments] == [(theirs, RECORDED, TX)]
