"""The lenders' reported payments and the small interface they are kept through: each ``payment.received`` the
platform accepted (the lender's reference, the loan, the amount in base units), written before the operator sends
``recordOffchainRepayment`` and settled with its transaction — the record the reconciler matches an off-chain
``LoanRepaid`` against, by reference. A payment is the loan's (the platform's loan id, which names the chain, the
CreditAggregator and its loan number), never the chain's loan number alone: a new deployment of the contracts numbers
its loans from 1 again, and its loan 1 is not the earlier deployment's. ``store.payments`` is the SQL implementation;
``InMemoryPaymentStore`` is the fake for unit tests.

A payment that brings the lender's payments for a loan to the total of payments disclosed with its quote, all of them
made by their due dates (or short by no more than a day's interest), is recorded on-chain as paying the loan in full
(``recorded_amount``, larger than ``amount`` when the chain's per-second interest came to more than the lender's
schedule: ``aggregator.offchain_payments``). When each payment was made is what the lender said: the ``occurred_at``
of the webhook that first reported it (``store.payments`` reads it from the stored webhook event), or when it was
accepted for a payment not reported by a webhook."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from aggregator.servicing.delinquency import Payment
from aggregator.snapshots import SnapshotUnitOfWork, rolled_back_on_exit

ACCEPTED, RECORDED, REFUSED = "accepted", "recorded", "refused"


@dataclass(frozen=True, slots=True)
class ReportedPayment:
    """A lender's payment as the platform accepted it."""

    provider_id: str
    payment_ref: str
    reference: str
    loan_id: str
    chain_id: int
    contract: str  # the loan's CreditAggregator
    onchain_loan_id: int
    amount: int
    event_id: str | None = None
    status: str = ACCEPTED
    tx_hash: str | None = None
    block_number: int | None = None
    #: the amount sent in ``recordOffchainRepayment`` when it is not ``amount``: the payment closing the loan, sent
    #: as what the loan owed on-chain when its latest attempt was sent (the contract applies no more than that)
    recorded_amount: int | None = None
    #: decided with the first report: the payment pays the loan in full (each attempt is sent as what it owes then)
    closes_loan: bool = False

    @property
    def sent_amount(self) -> int:
        """The amount ``recordOffchainRepayment`` is sent with."""
        return self.amount if self.recorded_amount is None else self.recorded_amount


class PaymentRecords(Protocol):
    """The payment records inside one unit of work (which commits; this never does)."""

    def accept(self, payment: ReportedPayment) -> ReportedPayment:
        """Record the payment unless its (loan, reference) is already recorded: the first report stands, as the
        operator's intent sends it once. Returns the payment as kept (the first report)."""
        ...

    def kept(self, loan_id: str, reference: str) -> ReportedPayment | None:
        """The payment of the loan kept under ``reference``, if any."""
        ...

    def hold_loan(self, loan_id: str) -> None:
        """Hold the loan's row until the unit of work ends, so that its payments are decided one at a time across
        processes (nothing to hold in one process's memory)."""
        ...

    def reported(self, loan_id: str, through: str | None = None) -> list[Payment]:
        """The loan's payments as the lenders reported them, in the order they were accepted, those the chain
        refused left out: each one's amount (base units) and when the lender said it was made (``at``, unix
        seconds: the ``occurred_at`` of the webhook that first reported it, else when it was accepted). With
        ``through``, those up to the payment kept under that reference, it the last."""
        ...

    def closes(self, loan_id: str, reference: str) -> None:
        """The payment kept under ``reference`` pays the loan in full (``closes_loan``), decided again after its
        first report (``aggregator.offchain_payments``)."""
        ...

    def send_as(self, loan_id: str, reference: str, recorded_amount: int | None) -> None:
        """The amount the payment's attempt is sent with, kept before it is sent (None: the amount reported)."""
        ...

    def settle(self, loan_id: str, reference: str, status: str, tx_hash: str | None, block: int | None) -> None:
        """The outcome of the operator's transaction: ``recorded`` in ``tx_hash`` at ``block``, or ``refused``."""
        ...

    def for_aggregator(self, chain_id: int, aggregator: str) -> list[ReportedPayment]:
        """The payments of the loans of the chain's CreditAggregator at ``aggregator`` (one deployment), in the order
        they were accepted."""
        ...


class PaymentUnitOfWork(Protocol):
    @property
    def payments(self) -> PaymentRecords: ...

    def commit(self) -> None: ...


class PaymentStore(Protocol):
    """Opens units of work (one database transaction each; leaving without ``commit`` rolls back)."""

    def unit_of_work(self) -> AbstractContextManager[PaymentUnitOfWork]: ...


# ---------------------------------------------------------------------------------------------- in-memory fake


@dataclass
class _Tables:
    payments: list[ReportedPayment] = field(default_factory=list)
    #: the webhooks' ``occurred_at`` by (provider, event id), as ``provider_webhook_events`` keeps them
    occurred: dict[tuple[str, str], datetime] = field(default_factory=dict)
    #: when each payment was accepted, by (loan, reference)
    accepted: dict[tuple[str, str], datetime] = field(default_factory=dict)


class InMemoryPaymentRecords:
    def __init__(self, tables: _Tables) -> None:
        self.tables = tables

    def accept(self, payment: ReportedPayment) -> ReportedPayment:
        kept = self.kept(*_key(payment))
        if kept is None:
            self.tables.payments.append(payment)
            self.tables.accepted[_key(payment)] = datetime.now(UTC)
        return kept or payment

    def hold_loan(self, loan_id: str) -> None:
        return None

    def kept(self, loan_id: str, reference: str) -> ReportedPayment | None:
        return next((p for p in self.tables.payments if _key(p) == (loan_id, reference)), None)

    def reported(self, loan_id: str, through: str | None = None) -> list[Payment]:
        payments = []
        for p in self.tables.payments:
            if p.loan_id == loan_id and p.status != REFUSED:
                payments.append(Payment(int(self._occurred(p).timestamp()), p.amount))
            if _key(p) == (loan_id, through):
                break
        return payments

    def closes(self, loan_id: str, reference: str) -> None:
        self.tables.payments = [
            replace(p, closes_loan=True) if _key(p) == (loan_id, reference) else p for p in self.tables.payments
        ]

    def _occurred(self, payment: ReportedPayment) -> datetime:
        said = None if payment.event_id is None else self.tables.occurred.get((payment.provider_id, payment.event_id))
        return said or self.tables.accepted[_key(payment)]

    def send_as(self, loan_id: str, reference: str, recorded_amount: int | None) -> None:
        self.tables.payments = [
            replace(p, recorded_amount=recorded_amount) if _key(p) == (loan_id, reference) else p
            for p in self.tables.payments
        ]

    def settle(self, loan_id: str, reference: str, status: str, tx_hash: str | None, block: int | None) -> None:
        self.tables.payments = [
            replace(p, status=status, tx_hash=tx_hash, block_number=block) if _key(p) == (loan_id, reference) else p
            for p in self.tables.payments
        ]

    def for_aggregator(self, chain_id: int, aggregator: str) -> list[ReportedPayment]:
        return [p for p in self.tables.payments if (p.chain_id, p.contract.lower()) == (chain_id, aggregator.lower())]


def _key(payment: ReportedPayment) -> tuple[str, str]:
    return payment.loan_id, payment.reference


class InMemoryPaymentUnitOfWork(SnapshotUnitOfWork):
    def __init__(self, tables: _Tables) -> None:
        super().__init__(tables)
        self.payments = InMemoryPaymentRecords(tables)


class InMemoryPaymentStore:
    """The fake for unit tests: one process, transactions as snapshots."""

    def __init__(self) -> None:
        self.tables = _Tables()

    def unit_of_work(self) -> AbstractContextManager[InMemoryPaymentUnitOfWork]:
        return rolled_back_on_exit(InMemoryPaymentUnitOfWork(self.tables))
