"""A traditional lender's received payment, recorded on-chain: the lender reports it with a signed ``payment.received``
webhook (its own payment reference, the amount in the loan asset's units, the offer it funded); the operator account
(``OPERATOR_ROLE``, its own transaction manager) sends ``recordOffchainRepayment`` under an intent keyed by the
chain, the CreditAggregator, the loan and that reference, so a webhook repeated, with the same or another event id,
sends nothing twice, and a later deployment's loan of the same number is sent its own (until 0038 the key named no
contract, and a lender's reference reused for it found the earlier loan's intent: answered with that transaction,
nothing sent). One intent per attempt (``record_intent_key``), as ``repaying.claim_collateral`` does: a transaction
the node did not take for now (refused — the operator's account out of gas — or dropped, or fees above the cap, or a
gas estimate that failed without a revert: a provider's rate limit, its internal error) leaves the payment accepted,
answered ``PaymentNotSent`` (503, report it again), and its next report is sent under the next attempt's key; a
revert (the estimate's revert data or "execution reverted", or a mined status 0) settles it refused, and every report
of it after is answered 409 without sending. Until 2026-11-29 any failed estimate settled it refused for good.
Under one fixed key, a payment the node once refused was refused for good, and the lender's retries got the same 409
for ever. A payment reported after default is recorded too (the contract takes it on a defaulted loan). The record
follows from the receipt's ``LoanRepaid`` (and ``LoanClosed`` when it is paid in full) through the ledger's
``record_events``.
Before anything is sent, the accepted payment is kept as the lender reported it (reference, loan,
amount in base units; ``aggregator.payment_records``), then settled with the transaction or as refused: the record
the reconciler matches the off-chain ``LoanRepaid`` against. A payment is its loan's — kept and counted by the
platform's loan id, and naming the loan's CreditAggregator — not the chain's loan number's: a new deployment of the
contracts numbers its loans from 1 again. Until 2026-11-29 (migration 0038) the new deployment's loan 9 was credited
with the earlier deployment's loan 9's payments: its first installment "completed" the disclosed total, was sent as
paying it in full, and the loan closed with its collateral released.

On-chain, ``paymentRef`` is keccak256 of ``"{provider_id}:{payment_ref}"`` (the lender's reference is free text up to
128 characters; the hash ties it to the lender).

**Paid in full.** The lender's schedule (disclosed with the quote, in its own day count) is the borrower's contract;
the chain accrues simple interest per second over a 365-day year, from when each payment is recorded. The two differ
by cents, so a borrower who made every disclosed payment on time could still owe a remainder on-chain, and the loan
would never close and be marked in default after maturity. A payment the lender reports as paying the loan in full
(``paid_in_full``: a payoff, early or final, by its books) is therefore sent as what the loan owes on-chain, plus a
day's interest for the time until it is mined (the contract applies no more than is owed), and the loan closes: the
lender, whose money the loan is, says nothing more is owed. So is the one that brings its reported payments for the
loan to the disclosed total of payments (``totalOfPayments``) when the loan was **paid as disclosed**, judged as
servicing judges it (``delinquency.paid_as_disclosed``): each installment's disclosed amount, with those before it,
paid before 00:00 UTC of the day after its due date — by when the lender says each payment was made (the webhook's
``occurred_at``, kept with the webhook event that first reported it; when it was accepted for a payment reported
otherwise), not by when it was recorded on-chain — or when what it leaves owed on-chain is at most a day's interest
on what the loan owes at its rate (``SHORTFALL_DAYS``: a payment the lender dates a few hours past the end of its due
date, UTC, in its own time zone). Any other such payment — the disclosed total paid late — is sent as reported: the
interest that went on accruing on what was unpaid (the disclosure promises it, with no late charge) stays owed, the
loan stays open and past due as servicing judges it (by its due dates and these same dates of its payments:
``servicing.payment_times``), and the lender reports the rest when it is paid. Before, the payment completing the
total closed the loan however late it came: a borrower paying 180 days late had all the late interest recorded as
repaid and the collateral released. The decision is kept with the payment (``closes_loan``), decided once with its
first report; the amount is not: each attempt is sent as what the loan owes when it is sent, plus a day's interest,
and kept as ``recorded_amount`` before it is sent, while a repeated report of an attempt sent already sends the same
transaction (its amount read from its intent). Until 2026-11-29 the amount worked out at the first report was sent by
every attempt: a payoff retried days later, after the node did not take the first (503), was those days' interest
short, and the loan stayed open. A payment kept accepted as not closing the loan, no attempt of it taken, is decided
again on its next report, as a first report is: 0038 kept as closing only the payments the code before it sent with a
``recorded_amount``, and that code kept none for a payoff reported with at least what the loan owed (until 2026-11-29
its retry was sent as reported, and the loan stayed open). The lender could close the loan as well by reporting a
larger amount: the flag trusts it with nothing more.

The decision reads what the lenders reported for the loan so far, so two payments of one loan are decided one after
the other: in one transaction holding the loan's row (``PaymentRecords.hold_loan``: ``FOR UPDATE`` on PostgreSQL,
across processes) and under the loan's claim (``aggregator.loan_locks.LoanClaims``: its lock in the process — SQLite
does not serialize a read before a write — and a lease in the database across processes). Decided side by side, two
last payments could each see the other missing and neither close the loan. What the loan owes is read before, so
that no transaction waits on the chain. The claim is held on until the attempt's intent is created (sent), so that two
reports of one payment, in one process or two, do not each work out an amount for one attempt: the second finds the
attempt in flight and follows its transaction. A report that waited for another process's claim longer than the wait
is answered ``PaymentNotSent`` (503, report it again), nothing sent. Should two still meet (a claim outlived by a
stalled holder), the second to send the attempt meets the first's intent under its key (``IntentConflict``), keeps the
amount that one was sent with as ``recorded_amount`` and follows its transaction. Until 2026-11-29 the claim was the
process's lock alone, so two processes (API replicas) each worked out an amount and relied on that conflict; and
before that the second kept its own amount, never sent, and answered 503: the record the reconciler matches the
``LoanRepaid`` against named an amount the chain never recorded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from aggregator.assets import AssetRegistry, parse_amount
from aggregator.errors import AggregatorError, AmbiguousOfferRef, InvalidCreditRequest, PaymentNotSent
from aggregator.installments import DueInstallment, schedule_from_disclosure, total_of_payments
from aggregator.ledger import ACTIVE, DEFAULTED
from aggregator.loan_locks import LoanBusy, LoanClaims, LoanLocks
from aggregator.loans import LoanRecord, LoanStore
from aggregator.payment_records import ACCEPTED, RECORDED, REFUSED, PaymentStore, ReportedPayment
from aggregator.platform import ChainRuntime, earlier_deployment
from aggregator.receipts import ReceiptRecorder
from aggregator.repaying import amount_owed, claim_collateral
from aggregator.servicing.delinquency import Payment, paid_as_disclosed
from chain.errors import (
    ChainError,
    ConfirmationTimeout,
    FeeCapExceeded,
    GasEstimationFailed,
    IntentConflict,
    TransactionDropped,
    TransactionRejected,
    TransactionReverted,
)
from chain.transactions import Call, Submission
from compliance.tila.disclosure import SECONDS_PER_DAY, single_payment_interest
from store.chain import DROPPED, FAILED, SqlChainStore
from store.leases import LeaseStore

log = logging.getLogger(__name__)


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


def record_intent_key(chain_id: int, aggregator: str, onchain_id: int, reference: bytes, attempt: int = 1) -> str:
    """The operator's ``recordOffchainRepayment`` of a payment to the loan ``onchain_id`` of the CreditAggregator at
    ``aggregator``, one intent per attempt (the first's key has no number). It names the contract, as the servicing
    intents of a loan do (``aggregator.servicing.defaults``): a later deployment numbers its loans from 1 again."""
    prefix = f"offchain-repayment:{chain_id}:{to_checksum_address(aggregator)}:{onchain_id}"
    return f"{prefix}:0x{reference.hex()}" + ("" if attempt == 1 else f":{attempt}")


@dataclass(frozen=True, slots=True)
class _Attempt:
    """The intent a payment is sent under now (``key``); the amount it was sent with when it exists (``sent``: in
    flight, mined or reverted), else None; why the chain refused the payment when it did (``refusal``)."""

    key: str
    sent: int | None
    refusal: str | None


def _amount_of(calldata: str) -> int:
    """The ``amount`` of a ``recordOffchainRepayment(loanId, amount, paymentRef)`` call's data: the second of its
    three static arguments, after the 4-byte selector."""
    data = bytes.fromhex(calldata.removeprefix("0x"))
    return int.from_bytes(data[36:68], "big")


async def _attempt(store: SqlChainStore, chain_id: int, aggregator: str, onchain_id: int, reference: bytes) -> _Attempt:
    """The intent a payment is sent under now: the first attempt stored whose intent is not failed or dropped (in
    flight, mined, or reverted), else the one after the last attempt stored (the first when none is); with why the
    chain refused the payment when it did (the error of that reverted intent, else of the last failed one before
    it). A failed intent of a payment not refused was not taken for now (the node refused it, the fees were above
    the cap): one is never sent again under its key, so the next attempt is. Every attempt stored is read, not each
    number up to the first missing one: a payment's attempts can start past 1 under a contract (the code before
    0038 sent an earlier deployment's loan's later attempt to the later deployment, and 0038 rekeyed it by that
    contract). Until 2026-11-29 such a gap read as nothing sent, and a repeated report sent the payment again: the
    contract credited it twice (it does not refuse a ``paymentRef`` it recorded)."""
    first, refusal = record_intent_key(chain_id, aggregator, onchain_id, reference), None
    stored = await store.attempts(first)
    for _, intent in stored:
        if intent.status not in (FAILED, DROPPED):
            return _Attempt(intent.key, _amount_of(intent.data), intent.error)
        refusal = intent.error
    following = stored[-1][0] + 1 if stored else 1
    return _Attempt(record_intent_key(chain_id, aggregator, onchain_id, reference, following), None, refusal)


def _record_call(chain: ChainRuntime, payment: ReportedPayment) -> Call:
    """``recordOffchainRepayment`` of ``payment`` with the amount it is sent with."""
    reference = bytes.fromhex(payment.reference.removeprefix("0x"))
    return Call.function(
        chain.aggregator(), "recordOffchainRepayment", payment.onchain_loan_id, payment.sent_amount, reference
    )


def _not_sent(chain: ChainRuntime, loan_id: str, payment_ref: str, intent: str, err: ChainError) -> PaymentNotSent:
    """Nothing mined, for now (the node did not take the transaction, or could not estimate it for another reason
    than a revert): the payment stays accepted, and its next report is the next attempt."""
    log.warning("payment %s of loan %s not sent under %s: %s", payment_ref, loan_id, intent, err)
    return PaymentNotSent(
        f"the operator's transaction recording payment {payment_ref} was not taken by {chain.name} "
        f"({type(err).__name__}); the payment is kept: report it again"
    )


#: one payment decision and send at a time per loan in this process, the fast path of its claim
#: (``OffchainPayments.record``)
_deciding = LoanLocks()


#: a payment completing the disclosed total late still closes the loan when it leaves owed at most this many days'
#: interest on what the loan owes (the lender dated it past midnight UTC of its due date, in its own time zone)
SHORTFALL_DAYS = 1


def closing_amount(owed: int, rate_bps: int) -> int:
    """What to send so that a loan owing ``owed`` now closes when mined within a day: ``owed`` plus a day's interest
    on it at ``rate_bps`` as the contract accrues it (on the principal alone, so this is never short)."""
    return owed + single_payment_interest(owed, rate_bps, SECONDS_PER_DAY)


def completes_total(schedule: Sequence[DueInstallment], reported: Sequence[Payment], amount: int) -> bool:
    """Whether a payment of ``amount`` brings the lender's ``reported`` payments of a loan to the total of payments
    of its disclosed ``schedule`` (never without one)."""
    return bool(schedule) and sum(p.amount for p in reported) + amount >= total_of_payments(schedule)


def closes_loan(
    schedule: Sequence[DueInstallment], payments: Sequence[Payment], owed: int, amount: int, rate_bps: int
) -> bool:
    """Whether the payment of ``amount`` completing the disclosed total is sent as paying the loan in full (see the
    module docstring): the loan was paid as disclosed by the lender's dates of its ``payments`` (this one with
    them), or what this one leaves of ``owed`` on-chain is at most ``SHORTFALL_DAYS``' interest on it at
    ``rate_bps``."""
    shortfall = single_payment_interest(owed, rate_bps, SHORTFALL_DAYS * SECONDS_PER_DAY)
    return paid_as_disclosed(schedule, payments) or owed - amount <= shortfall


def _closing(payment: ReportedPayment, owed: int, rate_bps: int) -> ReportedPayment:
    """The payment closing the loan sent as ``closing_amount`` of what it ``owed``, when that is more than the
    lender reported."""
    closing = closing_amount(owed, rate_bps)
    return replace(payment, recorded_amount=closing) if closing > payment.amount else payment


@dataclass(frozen=True, slots=True)
class _Decision:
    """What a payment's decision reads besides the payments kept: the loan's disclosed schedule (() without one) and
    rate, the lender's ``paid_in_full``, and when it says the payment was made (``occurred``, unix seconds)."""

    schedule: tuple[DueInstallment, ...]
    rate_bps: int
    paid_in_full: bool
    occurred: int


def _closes(
    decision: _Decision, reported: Sequence[Payment], amount: int, occurred: int, owed: int | None
) -> bool | None:
    """Whether the payment of ``amount`` the lender says was made at ``occurred`` (unix seconds), after its
    ``reported`` payments of the loan, is sent as paying the loan in full (see the module docstring); None when it
    may and what the loan ``owed`` was not read."""
    if not (decision.paid_in_full or completes_total(decision.schedule, reported, amount)):
        return False
    if owed is None:
        return None
    dated = [*reported, Payment(occurred, amount)]
    return decision.paid_in_full or closes_loan(decision.schedule, dated, owed, amount, decision.rate_bps)


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
        leases: LeaseStore | None = None,
    ) -> None:
        """``leases``: where a loan's claim is taken across processes (the database's; None: in this process only,
        for in-memory stores). Another process's claim is waited for up to ``wait_seconds``."""
        self._loans, self._payments, self._chains, self._assets = loans, payments, chains, assets
        self._receipts, self._wait = receipts, wait_seconds
        self._claims = LoanClaims("offchain-payment", _deciding, leases, patience=wait_seconds)

    def _loan(self, provider_id: str, offer_ref: str) -> tuple[LoanRecord, tuple[DueInstallment, ...]]:
        """The loan of the lender's offer, and the schedule disclosed with its quote (() without one)."""
        with self._loans.reading() as loans:
            try:
                loan = loans.by_provider_ref(provider_id, offer_ref)
            except AmbiguousOfferRef as err:  # never one of them at random: another borrower's loan paid down
                raise PaymentNotRecordable(str(err), 409) from err
            if loan is None or loan.onchain_loan_id is None:
                raise PaymentNotRecordable(f"no loan of {provider_id}'s offer {offer_ref}", 404)
            disclosure = None if loan.quote_id is None else loans.disclosure(loan.quote_id)
        if not disclosure or not disclosure.get("payments"):
            return loan, ()
        return loan, schedule_from_disclosure(disclosure)

    def _decide_and_accept(
        self, decision: _Decision, payment: ReportedPayment, owed: int | None, undecided: bool
    ) -> ReportedPayment | None:
        """In one transaction holding the loan's row: the payment as kept with its first report, or else decided
        (sent as closing the loan when it pays it in full: see the module docstring) and kept; None, keeping
        nothing, when it may pay the loan in full and what the loan ``owed`` was not read. ``undecided``: no attempt
        of the payment was taken (none stored, or each failed or dropped): a payment kept accepted and not closing
        the loan is decided again, as its first report was, and kept as closing it when it does (see
        ``_decided``)."""
        with self._payments.unit_of_work() as uow:
            uow.payments.hold_loan(payment.loan_id)
            kept = uow.payments.kept(payment.loan_id, payment.reference)
            if kept is None:
                reported, occurred = uow.payments.reported(payment.loan_id), decision.occurred
            elif undecided and kept.status == ACCEPTED and not kept.closes_loan:
                *reported, own = uow.payments.reported(payment.loan_id, through=kept.reference)
                payment, occurred = kept, own.at
            else:
                return kept
            closes = _closes(decision, reported, payment.amount, occurred, owed)
            if closes is None:
                return None
            if kept is None:
                if closes:
                    assert owed is not None  # read: closing is decided by what the loan owes
                    payment = _closing(replace(payment, closes_loan=True), owed, decision.rate_bps)
                kept = uow.payments.accept(payment)
            elif closes:
                uow.payments.closes(kept.loan_id, kept.reference)
                kept = replace(kept, closes_loan=True)
            uow.commit()
        return kept

    async def _decided(
        self, chain: ChainRuntime, payment: ReportedPayment, decision: _Decision, undecided: bool
    ) -> tuple[ReportedPayment, int | None]:
        """The payment as kept: decided and kept now, or as its first report was (see the module docstring); with
        what the loan owes when it was read for the decision now. What the loan owes is read only for a payment that
        may pay it in full, outside the transaction, which then runs a second time with it. The caller holds the
        loan's lock. ``undecided`` (no attempt of it taken): a payment kept accepted as not closing the loan is
        decided again — 0038 kept as closing only the payments the code before it sent with a ``recorded_amount``,
        and that code decided a payoff reported with at least what the loan owed as closing it with none: its retry
        was sent as the amount reported, days of interest short, and the loan stayed open."""
        kept = await asyncio.to_thread(self._decide_and_accept, decision, payment, None, undecided)
        if kept is not None:
            return kept, None
        owed = await amount_owed(chain, payment.onchain_loan_id)
        kept = await asyncio.to_thread(self._decide_and_accept, decision, payment, owed, undecided)
        assert kept is not None  # with what the loan owes read, the payment is always kept
        return kept, owed

    async def _sent_as(
        self, chain: ChainRuntime, payment: ReportedPayment, attempt: _Attempt, owed: int | None, rate_bps: int
    ) -> ReportedPayment:
        """The payment with the amount its attempt is sent with, kept (``recorded_amount``) before it is sent: what
        the attempt's intent was sent with when it exists (the same call again); else, for a payment that closes the
        loan, what the loan owes now plus a day's interest (``owed`` when just read for the decision, else read now:
        a retry days after the first report owes the interest of those days too); else the amount reported."""
        if attempt.sent is not None:
            sending = replace(payment, recorded_amount=None if attempt.sent == payment.amount else attempt.sent)
        elif payment.closes_loan:
            owed = await amount_owed(chain, payment.onchain_loan_id) if owed is None else owed
            sending = _closing(replace(payment, recorded_amount=None), owed, rate_bps)
        else:
            sending = payment
        if sending.recorded_amount != payment.recorded_amount:
            await asyncio.to_thread(self._send_as, sending)
        return sending

    async def _submit(
        self, chain: ChainRuntime, payment: ReportedPayment, intent: str
    ) -> tuple[ReportedPayment, Submission]:
        """Send ``payment``'s attempt ``intent`` with the amount kept for it. Another process may have sent the same
        attempt a moment before with another amount (a payoff's, worked out from what the loan owed then), which the
        transaction manager answers with ``IntentConflict``: then the amount that attempt was sent with is kept
        instead — the one the chain records, not one never sent — and its transaction is followed."""
        try:
            return payment, await chain.operator.submit(intent, _record_call(chain, payment))
        except IntentConflict:
            stored = await chain.operator.store.get_intent(intent)
            assert stored is not None  # the conflict is with the intent stored under the key
            payment = await self._sent_as(chain, payment, _Attempt(intent, _amount_of(stored.data), None), None, 0)
            return payment, await chain.operator.submit(intent, _record_call(chain, payment))

    def _send_as(self, payment: ReportedPayment) -> None:
        with self._payments.unit_of_work() as uow:
            uow.payments.send_as(payment.loan_id, payment.reference, payment.recorded_amount)
            uow.commit()

    def _settle(self, payment: ReportedPayment, status: str, tx_hash: str | None, block: int | None) -> None:
        with self._payments.unit_of_work() as uow:
            uow.payments.settle(payment.loan_id, payment.reference, status, tx_hash, block)
            uow.commit()

    async def record(
        self,
        provider_id: str,
        offer_ref: str,
        payment_ref: str,
        amount: str,
        event_id: str | None = None,
        *,
        paid_in_full: bool = False,
        occurred_at: datetime | None = None,
    ) -> RecordedPayment:
        """Keep the payment as reported, send ``recordOffchainRepayment`` once per (loan, payment reference) and
        record its receipt. ``paid_in_full``: the lender's books show the loan paid off with this payment;
        ``occurred_at``: when the lender says the borrower made it (the webhook's; now when not said, UTC when it
        names no offset)."""
        loan, schedule = await asyncio.to_thread(self._loan, provider_id, offer_ref)
        if loan.pool:
            raise PaymentNotRecordable(f"loan {loan.id} is a pool loan: its repayments are made on-chain", 409)
        chain = self._chains.get(loan.chain_name)
        if chain is None:
            raise PaymentNotRecordable(f"loan {loan.id} is on {loan.chain_name}, not configured here", 409)
        earlier = earlier_deployment(chain, loan.contract)
        if earlier is not None:  # recorded on the newest deployment, it would be that one's loan of the same id
            raise PaymentNotRecordable(f"loan {loan.id}: {earlier}", 409)
        asset = self._assets.by_address(loan.chain_name, loan.asset_address or "")
        if asset is None:
            raise PaymentNotRecordable(f"loan {loan.id}'s asset is not one the platform lists", 409)
        try:
            base_units = asset.to_base_units(parse_amount(amount, "amount"), "amount")
        except InvalidCreditRequest as err:
            raise PaymentNotRecordable(f"amount: {err.message}", 422) from None
        onchain_id = int(loan.onchain_loan_id or 0)
        reference = payment_ref_hash(provider_id, payment_ref)
        operator = chain.operator
        first = record_intent_key(chain.chain_id, loan.contract, onchain_id, reference)
        if not await operator.store.attempts(first) and loan.status not in (ACTIVE, DEFAULTED):
            raise PaymentNotRecordable(f"loan {loan.id} is {loan.status}: nothing is left to record", 409)
        reported = ReportedPayment(
            provider_id,
            payment_ref,
            "0x" + reference.hex(),
            loan.id,
            chain.chain_id,
            loan.contract,
            onchain_id,
            base_units,
            event_id,
        )
        occurred = occurred_at or datetime.now(UTC)
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=UTC)
        decision = _Decision(schedule, loan.rate_bps or 0, paid_in_full, int(occurred.timestamp()))
        try:
            # decided, and its attempt's amount worked out and sent, one report of the loan at a time, across processes
            async with self._claims.hold(loan.id):
                attempt = await _attempt(operator.store, chain.chain_id, loan.contract, onchain_id, reference)
                payment, owed = await self._decided(chain, reported, decision, undecided=attempt.sent is None)
                intent = attempt.key
                if payment.status == REFUSED:  # for good, here or in another process: no attempt is sent again
                    raise PaymentNotRecordable(f"the chain refused the payment's record: {attempt.refusal}", 409)
                payment = await self._sent_as(chain, payment, attempt, owed, decision.rate_bps)
                payment, submission = await self._submit(chain, payment, intent)
            receipt = await operator.wait(intent, within=self._wait)
        except LoanBusy as err:  # nothing decided or sent: the lender's retry is
            raise PaymentNotSent(
                f"another payment of loan {loan.id} is being sent by another of the platform's processes; the payment "
                f"{payment_ref} was not sent: report it again"
            ) from err
        except ConfirmationTimeout:
            await asyncio.to_thread(self._settle, payment, ACCEPTED, submission.tx_hash, None)
            return RecordedPayment(loan.id, "submitted", submission.tx_hash)
        except (GasEstimationFailed, TransactionReverted) as err:
            if isinstance(err, GasEstimationFailed) and not err.reverts:  # a rate limit, the node's internal error
                raise _not_sent(chain, loan.id, payment_ref, intent, err) from err
            await asyncio.to_thread(self._settle, payment, REFUSED, None, None)  # the contract refuses it
            raise PaymentNotRecordable(f"the chain refused the payment's record: {err}", 409) from err
        except (TransactionRejected, TransactionDropped, FeeCapExceeded) as err:
            raise _not_sent(chain, loan.id, payment_ref, intent, err) from err
        await asyncio.to_thread(self._settle, payment, RECORDED, receipt.tx_hash, receipt.block_number)
        return await self._recorded(chain, loan.id, onchain_id, receipt.tx_hash)

    async def _recorded(self, chain: ChainRuntime, loan_id: str, onchain_id: int, tx_hash: str) -> RecordedPayment:
        events = await self._receipts.record(chain, tx_hash)
        ours = [e for e in events if e.args.get("loanId") == onchain_id]
        if any(e.event == "CollateralClaimable" for e in ours):  # the token refused to push it back
            await claim_collateral(chain, onchain_id, self._wait)
        repaid = next((e for e in ours if e.event == "LoanRepaid"), None)
        if repaid is None:  # confirmed, but its events were not read here: the indexer records them
            log.warning("payment of loan %s confirmed in %s: no LoanRepaid of it in the receipt read", loan_id, tx_hash)
            return RecordedPayment(loan_id, "confirmed", tx_hash)
        return RecordedPayment(
            loan_id,
            "confirmed",
            tx_hash,
            int(repaid.args["interestPaid"]),
            int(repaid.args["principalPaid"]),
            any(e.event == "LoanClosed" for e in ours),
        )
