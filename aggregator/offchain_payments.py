"""A traditional lender's received payment, recorded on-chain: the lender reports it with a signed ``payment.received``
webhook (its own payment reference, the amount in the loan asset's units, the offer it funded); the operator account
(``OPERATOR_ROLE``, its own transaction manager) sends ``recordOffchainRepayment`` under an intent keyed by the
chain, the loan and that reference, so a webhook repeated, with the same or another event id, sends nothing twice.
A payment reported after default is recorded too (the contract takes it on a defaulted loan). The record follows from
the receipt's ``LoanRepaid`` (and ``LoanClosed`` when it is paid in full) through the ledger's ``record_events``.
Before anything is sent, the accepted payment is kept as the lender reported it (reference, loan,
amount in base units; ``aggregator.payment_records``), then settled with the transaction or as refused: the record
the reconciler matches the off-chain ``LoanRepaid`` against.

On-chain, ``paymentRef`` is keccak256 of ``"{provider_id}:{payment_ref}"`` (the lender's reference is free text up to
128 characters; the hash ties it to the lender)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from eth_utils.crypto import keccak

from aggregator.assets import AssetRegistry, parse_amount
from aggregator.errors import AggregatorError, InvalidCreditRequest
from aggregator.ledger import ACTIVE, DEFAULTED
from aggregator.loans import LoanRecord, LoanStore
from aggregator.payment_records import ACCEPTED, RECORDED, REFUSED, PaymentStore, ReportedPayment
from aggregator.platform import ChainRuntime
from aggregator.receipts import ReceiptRecorder
from aggregator.repaying import claim_collateral
from chain.errors import ConfirmationTimeout, GasEstimationFailed, TransactionReverted
from chain.transactions import Call


class PaymentNotRecordable(AggregatorError):
    """The lender's payment cannot be recorded (no loan of its offer, a pool loan, a loan closed, a bad amount);
    ``status`` is the webhook's answer (404 or 409 or 422)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class RecordedPayment:
    """``confirmed`` (mined and in the ledger) or ``submitted`` (sent, not mined within the wait)."""

    loan_id: str
    status: str
    tx_hash: str | None
    interest_paid: int = 0
    principal_paid: int = 0
    closed: bool = False


def payment_ref_hash(provider_id: str, payment_ref: str) -> bytes:
    """The on-chain ``paymentRef`` of a lender's payment reference."""
    return keccak(text=f"{provider_id}:{payment_ref}")


class OffchainPayments:
    def __init__(
        self,
        loans: LoanStore,
        payments: PaymentStore,
        chains: dict[str, ChainRuntime],
        assets: AssetRegistry,
        receipts: ReceiptRecorder,
        *,
        wait_seconds: float = 30,
    ) -> None:
        self._loans, self._payments, self._chains, self._assets = loans, payments, chains, assets
        self._receipts, self._wait = receipts, wait_seconds

    def _loan(self, provider_id: str, offer_ref: str) -> LoanRecord:
        with self._loans.reading() as loans:
            loan = loans.by_provider_ref(provider_id, offer_ref)
        if loan is None or loan.onchain_loan_id is None:
            raise PaymentNotRecordable(f"no loan of {provider_id}'s offer {offer_ref}", 404)
        return loan

    def _accept(self, payment: ReportedPayment) -> None:
        with self._payments.unit_of_work() as uow:
            uow.payments.accept(payment)
            uow.commit()

    def _settle(self, payment: ReportedPayment, status: str, tx_hash: str | None, block: int | None) -> None:
        with self._payments.unit_of_work() as uow:
            uow.payments.settle(payment.chain_id, payment.onchain_loan_id, payment.reference, status, tx_hash, block)
            uow.commit()

    async def record(
        self, provider_id: str, offer_ref: str, payment_ref: str, amount: str, event_id: str | None = None
    ) -> RecordedPayment:
        """Keep the payment as reported, send ``recordOffchainRepayment`` once per (loan, payment reference) and
        record its receipt."""
        loan = await asyncio.to_thread(self._loan, provider_id, offer_ref)
        if loan.pool:
            raise PaymentNotRecordable(f"loan {loan.id} is a pool loan: its repayments are made on-chain", 409)
        chain = self._chains.get(loan.chain_name)
        if chain is None:
            raise PaymentNotRecordable(f"loan {loan.id} is on {loan.chain_name}, not configured here", 409)
        asset = self._assets.by_address(loan.chain_name, loan.asset_address or "")
        if asset is None:
            raise PaymentNotRecordable(f"loan {loan.id}'s asset is not one the platform lists", 409)
        try:
            base_units = asset.to_base_units(parse_amount(amount, "amount"), "amount")
        except InvalidCreditRequest as err:
            raise PaymentNotRecordable(f"amount: {err.message}", 422) from None
        onchain_id = int(loan.onchain_loan_id or 0)
        reference = payment_ref_hash(provider_id, payment_ref)
        call = Call.function(chain.aggregator(), "recordOffchainRepayment", onchain_id, base_units, reference)
        intent = f"offchain-repayment:{chain.chain_id}:{onchain_id}:0x{reference.hex()}"
        operator = chain.operator
        if await operator.store.get_intent(intent) is None and loan.status not in (ACTIVE, DEFAULTED):
            raise PaymentNotRecordable(f"loan {loan.id} is {loan.status}: nothing is left to record", 409)
        payment = ReportedPayment(
            provider_id, payment_ref, "0x" + reference.hex(), loan.id, chain.chain_id, onchain_id, base_units, event_id
        )
        await asyncio.to_thread(self._accept, payment)
        try:
            submission = await operator.submit(intent, call)
            receipt = await operator.wait(intent, within=self._wait)
        except ConfirmationTimeout:
            await asyncio.to_thread(self._settle, payment, ACCEPTED, submission.tx_hash, None)
            return RecordedPayment(loan.id, "submitted", submission.tx_hash)
        except (GasEstimationFailed, TransactionReverted) as err:
            await asyncio.to_thread(self._settle, payment, REFUSED, None, None)
            raise PaymentNotRecordable(f"the chain refused the payment's record: {err}", 409) from err
        await asyncio.to_thread(self._settle, payment, RECORDED, receipt.tx_hash, receipt.block_number)
        return await self._recorded(chain, loan.id, onchain_id, receipt.tx_hash)

    async def _recorded(self, chain: ChainRuntime, loan_id: str, onchain_id: int, tx_hash: str) -> RecordedPayment:
        events = await self._receipts.record(chain, tx_hash)
        ours = [e for e in events if e.args.get("loanId") == onchain_id]
        repaid = next(e for e in ours if e.event == "LoanRepaid")
        if any(e.event == "CollateralClaimable" for e in ours):  # the token refused to push it back
            await claim_collateral(chain, onchain_id, self._wait)
        return RecordedPayment(
            loan_id,
            "confirmed",
            tx_hash,
            int(repaid.args["interestPaid"]),
            int(repaid.args["principalPaid"]),
            any(e.event == "LoanClosed" for e in ours),
        )
