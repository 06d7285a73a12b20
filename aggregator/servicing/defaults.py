"""The default job: one per chain across processes (lease kind ``defaulter``), run in the API process when
``CREDITMESH_WORKERS`` names it.

Every round it reads each open loan's maturity, status and outstanding principal from the CreditAggregator
(``getLoan``, at a pinned block, with the contract's ``gracePeriod``; ``read_views`` splits the calls into batches a
node takes) and the block's time — the chain's clock, which is the one the contract judges by. Then, per loan:

* **past due**: the loan's days past due (``delinquency``: by the due dates disclosed with its quote, one payment or
  several, covered by all the ledger shows repaid, interest and principal; by its maturity without a disclosed
  schedule) put it in a bucket;
  each bucket it enters in a late period is recorded once (``loan_past_due_notices``) and announced as
  ``loan.past_due`` in the same transaction (``on_past_due``, by default the outbox's ``append``, keyed by the bucket
  and the due date the period is counted from); a loan found current again has its notices deleted, so its next late
  period is announced from its first bucket;
* **paid as disclosed**: a loan whose repayments reached each installment's disclosed amount (with those before it)
  by the end of its due date, UTC, by their blocks' times — a lender's payment by its lender's date, never after its
  block (``delinquency.paid_as_disclosed``, ``payment_times``) — is current whatever remainder the contract's per-second
  accrual left owed: neither announced past due nor marked in default (``DefaultReport.paid_as_disclosed``);
* **default**: once the block time is past maturity plus the grace period and the loan is past due by its due dates
  (``delinquency.defaultable``: never while it is current, within its last due date or paid as disclosed), the
  operator (``OPERATOR_ROLE``, ``CREDITMESH_OPERATOR_KEY``) sends ``markDefault`` — once per loan: its intent is
  keyed by the loan (its CreditAggregator and its id there: ``default_intent_key``), so a second round, process or
  restart resumes the same transaction and never sends another (one the node did not take is followed by the next
  attempt, below); an ``eth_call`` simulation from the operator comes before each attempt's send. The receipt's
  ``LoanDefaulted`` is applied to the ledger at once (the indexer applies the same confirmed event later,
  idempotently); the ledger's change writes ``loan.defaulted``, not this job.
* **unfunded**: a loan funded off-chain whose lender refused the funding instruction or reported it failed (the
  accept's ``fund-refused``: ``OpenLoan.unfunded``) is neither announced past due nor marked in default, and the
  operator holds its liquidation (``holdLiquidation`` on the CollateralManager, held once per loan: ``liquidate`` is
  open to anyone, and would pay the lender that never lent out of the borrower's collateral); once its
  lender's own status of the offer (``funding_of``) says it was not funded, the operator sends ``cancelUnfunded`` for
  it — once per loan, keyed, simulated and fenced as ``markDefault`` — which ends it on chain with no debt and
  releases its collateral to the borrower. The receipt's ``LoanCancelled`` is applied to the ledger at once (the loan
  becomes ``cancelled`` and leaves the open loans, so no later round sends anything); the ledger's change writes
  ``loan.cancelled`` and ``loan.closed``. A loan its lender says it funded (or does not answer for), or one the
  contract refuses to cancel (something was repaid on it, or it was marked in default before it was known to be
  unfunded), is skipped and logged as an error for an operator.
* **funding pending**: a loan funded off-chain whose lender has not answered the funding instruction yet (the accept
  ``recorded``, neither ``funded`` nor ``fund-refused``: ``OpenLoan.funding_pending``; after a lender outage recovery
  sends it again) is left alone as an unfunded one — neither announced past due nor marked in default — and its
  liquidation is held the same way (the same intents); nothing is cancelled, since the lender may yet fund it. Once
  its lender answers ``funded`` the loan is serviced, and the job releases the hold it placed
  (``releaseLiquidationHold``: ``held_loans``). Past the funding window the accept gives up (``fund-refused``:
  ``aggregator.accepting``) and the loan is unfunded, as above.

Each of the operator's intents of a loan — ``markDefault``, ``cancelUnfunded``, a hold and its release — is sent
under one intent per attempt (``aggregator.servicing.intent_keys``: the first's key has no number, ``:2``, ``:3`` …
after it; ``current_attempt``), as ``repaying.claim_collateral`` does: an attempt the node did not take (refused —
the operator's account out of gas — or dropped) or that reverted is never sent again under its key, so the next
round (or an admin's settlement) sends the next attempt, simulated first. A hold or release counts as done only
while its attempt is in flight or confirmed. Until 2026-11-29 each had one key per loan, ever, and any intent under
it counted: a release the node refused once was never tried again — the job took the loan as released, an admin's
settle-as-funded failed for ever, and ``liquidate`` reverted ``LiquidationHeld`` for everyone: an underwater loan
nobody could liquidate; a hold refused once left a loan whose funding was pending open to anyone's ``liquidate``; a
``markDefault`` refused once was never sent again (the loan never in default: its lender could never recover through
liquidation); and a ``cancelUnfunded`` refused once failed for ever, the job's and an admin's alike.

While the operator's account cannot pay for gas (the node refuses its sends for their funds), a loan's next attempt
is deferred, the pause doubling per refusal up to ``DefaulterSettings.most_pause``, and once a round had one refused
the rest of it sends none; the account's balance put back is used by the next round. One error is logged naming the
account and chain, a gauge and a counter say it, and the admins' ``/health`` shows it (``sender_funds``). Before
(fixed 2026-11-29) every round left one more failed attempt per loan and action, without end.

The job reads and writes through a ``ServicingStore`` (``aggregator.servicing.repository``; SQL by default): the
open loans, the announced buckets and the outbox, with the lease's fence, in one unit of work per round's writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from eth_utils.address import to_checksum_address

from aggregator.errors import LoanNotCancellable
from aggregator.indexer import default_holder
from aggregator.ledger import LedgerChain
from aggregator.receipts import apply_receipt
from aggregator.servicing.delinquency import (
    Bucket,
    Delinquency,
    Payment,
    defaultable,
    delinquency,
    disclosed_schedule,
    may_be_paid_as_disclosed,
)
from aggregator.servicing.intent_keys import (
    attempt_history,
    cancel_intent_key,
    current_attempt,
    default_intent_key,
    hold_intent_key,
    release_intent_key,
)
from aggregator.servicing.leased import Leader, run_leased
from aggregator.servicing.past_due import OnChainLoan, PastDueSink, announce_past_due, write_past_due
from aggregator.servicing.payment_times import RecordedRepayment, dated
from aggregator.servicing.repository import (
    UNFUNDED,
    OpenLoan,
    ServicingStore,
    left_alone,
    readable,
    serviced,
)
from aggregator.servicing.sender_funds import SenderFunds
from aggregator.servicing.unserviceable import Unserviceable
from chain.artifacts import load_artifact
from chain.client import ChainClient
from chain.deployment import DeploymentRecord
from chain.errors import ChainError, ConfirmationTimeout, TransactionReverted
from chain.relay import revert_of
from chain.signers import Role
from chain.transactions import Call, TransactionManager
from chain.views import read_views, view
from providers.models import FundingState
from store.chain import IntentRecord
from store.db import Database
from store.leases import LeaseStore
from store.servicing import SqlServicingStore

__all__ = [  # the intents' keys kept importable from here, where they were defined before ``intent_keys``
    "ACTIVE",
    "LEASE_KIND",
    "NOT_FUNDED",
    "SETTLE",
    "CancelOutcome",
    "DefaultJob",
    "DefaultReport",
    "DefaulterSettings",
    "FundingOf",
    "OnChainLoan",
    "PastDueSink",
    "announce_past_due",
    "cancel_intent_key",
    "current_attempt",
    "default_intent_key",
    "hold_intent_key",
    "liquidation_held",
    "release_intent_key",
    "write_past_due",
]

log = logging.getLogger(__name__)

LEASE_KIND = "defaulter"
ACTIVE = 1  # LoanStatus.Active in the contracts' enum


@dataclass(frozen=True, slots=True)
class DefaulterSettings:
    ttl: timedelta = timedelta(seconds=15)
    interval: float = 30.0
    receipt_timeout: float = 60.0
    #: the pause after an attempt refused for the operator's account's funds, doubling per refusal up to the most
    first_pause: float = 60.0
    most_pause: float = 3_600.0


@dataclass
class DefaultReport:
    block: int
    timestamp: int
    buckets: dict[int, Bucket] = field(default_factory=dict)  # loan ref → bucket now
    announced: list[tuple[int, Bucket]] = field(default_factory=list)
    defaulted: dict[int, str] = field(default_factory=dict)  # loan ref → markDefault tx hash
    cancelled: dict[int, str] = field(default_factory=dict)  # loan ref → cancelUnfunded tx hash
    skipped: dict[int, str] = field(default_factory=dict)
    held: dict[int, str] = field(default_factory=dict)  # loan ref → holdLiquidation tx hash
    released: list[int] = field(default_factory=list)  # loans now funded whose hold was released (or not held)
    errors: dict[int, ChainError] = field(default_factory=dict)  # loan ref → what a send raised (a timeout: pending)
    #: loan ref → why its next attempt was not sent this round (the operator's account cannot pay: ``sender_funds``)
    deferred: dict[int, str] = field(default_factory=dict)
    #: loan ref → the principal remainder still owed on-chain by a loan paid as disclosed (neither past due nor
    #: marked in default: ``delinquency.paid_as_disclosed``)
    paid_as_disclosed: dict[int, int] = field(default_factory=dict)
    #: loan id → why the round could not read the loan (its ledger row, or its ``getLoan``): skipped, said once and
    #: counted (``unserviceable``), the other loans served
    unserviceable: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """An admin's ``cancelUnfunded`` (``DefaultJob.cancel``): its transaction once confirmed (and applied to the
    ledger); ``confirmed`` False when it was sent and not confirmed within the wait (the default job resumes it)."""

    tx_hash: str | None
    confirmed: bool


FundingOf = Callable[[str, str], Awaitable[FundingState]]
"""The lender's own state of its offer (provider id, the lender's offer reference): Provider Quote Protocol
``GET /v1/offers/{ref}``, through the provider registry."""

#: the lender's states of an offer it did not fund, and will not: what lets the operator cancel an unfunded loan
NOT_FUNDED = frozenset({FundingState.FAILED, FundingState.CANCELLED, FundingState.WITHDRAWN, FundingState.EXPIRED})


#: where an admin records the settlement of an unfunded loan the job leaves (``aggregator.funding_settlement``)
SETTLE = "POST /v1/loans/{id}/funding-settlement"


class DefaultJob:
    def __init__(
        self,
        client: ChainClient,
        record: DeploymentRecord,
        database: Database,
        operator: TransactionManager,
        *,
        on_past_due: PastDueSink = write_past_due,
        store: ServicingStore | None = None,
        leases: LeaseStore | None = None,
        holder: str | None = None,
        settings: DefaulterSettings = DefaulterSettings(),
        funding_of: FundingOf | None = None,
    ) -> None:
        self.client, self.record, self.database, self.operator = client, record, database, operator
        self.on_past_due = on_past_due
        self.funding_of = funding_of
        self.store: ServicingStore = store or SqlServicingStore(database)
        self.leases: LeaseStore = leases or self.store.leases
        self.holder = holder or default_holder()
        self.settings = settings
        self.ledger_chain = LedgerChain.from_record(record)
        self._aggregator: Any = client.w3.eth.contract(
            address=to_checksum_address(self.ledger_chain.aggregator), abi=load_artifact("CreditAggregator").abi
        )
        self._collateral: Any = client.w3.eth.contract(
            address=record.address("CollateralManager"), abi=load_artifact("CollateralManager").abi
        )
        self.funds = SenderFunds(
            client, operator, settings.first_pause, settings.most_pause, role=Role.OPERATOR, job="defaulter",
            sends="markDefault, cancelUnfunded, hold and release attempts",
        )  # fmt: skip
        self.unserviceable = Unserviceable(log, LEASE_KIND, self.ledger_chain.chain_id)

    @property
    def chain_id(self) -> int:
        return self.ledger_chain.chain_id

    async def run(self, stop: asyncio.Event) -> None:
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

    async def run_round(self, leader: Leader | None = None) -> DefaultReport:
        self.funds.new_round()
        self.unserviceable.new_round()
        loans, unreadable = readable(await asyncio.to_thread(self._open_loans))
        block = await self.client.rpc("eth_getBlockByNumber", "latest", False)
        number, now = int(block["number"], 16), int(block["timestamp"], 16)
        report = DefaultReport(number, now)
        for loan in unreadable:
            self._unserviceable(report, loan, f"its ledger row cannot be read: {loan.unreadable}")
        grace, onchain = await self._read(loans, number)
        for loan in loans:
            if isinstance(onchain[loan.loan_ref], ChainError):
                self._unserviceable(report, loan, f"its getLoan cannot be read: {onchain[loan.loan_ref]}")
        loans = [loan for loan in loans if not isinstance(onchain[loan.loan_ref], ChainError)]
        read = {ref: state for ref, state in onchain.items() if isinstance(state, OnChainLoan)}
        loans, unserviced = serviced(loans)
        payments = await self._payment_times(loans, read, now)
        await asyncio.to_thread(self._announce, loans, read, now, report, leader, payments)
        for loan in loans:
            state = read[loan.loan_ref]
            judged_now = Delinquency(0, report.buckets[loan.loan_ref], now)
            if state.status == ACTIVE and defaultable(state.maturity, grace, now, judged_now):
                await self._mark_default(loan, report, leader)
        for loan in unserviced:
            if loan.unfunded:
                await self._cancel_unfunded(loan, report, leader)
            else:  # its funding pending: held until its lender answers, never cancelled meanwhile
                await self._hold(loan, report, leader)
        await self._release_funded(loans, report, leader)
        await self.funds.end_round()
        self.unserviceable.end_round()
        return report

    def _unserviceable(self, report: DefaultReport, loan: OpenLoan, reason: str) -> None:
        """Skip ``loan``, which the round cannot read: said once (not every round), counted."""
        report.unserviceable[loan.id] = reason
        if loan.loan_ref:
            report.skipped[loan.loan_ref] = reason
        self.unserviceable.skip(f"{loan.id} (on-chain id {loan.loan_ref or 'unknown'})", reason)

    async def _round_attempt(
        self, function: str, key_of: Callable[..., str], contract: str, loan_ref: int, report: DefaultReport
    ) -> tuple[str, IntentRecord | None] | None:
        """``current_attempt`` of a round's ``function`` of ``loan_ref`` (on ``contract``), or None with the reason
        in ``report.deferred``: a new attempt the operator's account cannot pay for now (``sender_funds``)."""
        key, intent, earlier = await attempt_history(self.operator.store, partial(key_of, self.chain_id, contract,
                                                                                   loan_ref))  # fmt: skip
        deferred = None if intent is not None else await self.funds.deferral(function, earlier)
        if deferred is not None:
            report.deferred[loan_ref] = deferred
            return None
        return key, intent

    def _open_loans(self) -> list[OpenLoan]:
        with self.store.unit_of_work() as uow:
            return uow.servicing.open_loans(self.chain_id, self.ledger_chain.aggregator)

    async def _read(self, loans: Sequence[OpenLoan], block: int) -> tuple[int, dict[int, OnChainLoan | ChainError]]:
        """The contract's grace period (the round fails without it) and each loan's state, or why it cannot be read
        (the others are read all the same)."""
        aggregator = self.ledger_chain.aggregator
        calls = [view("CreditAggregator", "gracePeriod").call(aggregator, block=block)]
        calls += [view("CreditAggregator", "getLoan").call(aggregator, loan.loan_ref, block=block) for loan in loans]
        answers = await read_views(self.client.provider, calls, each=True)
        if isinstance(answers[0], ChainError):
            raise answers[0]
        onchain: dict[int, OnChainLoan | ChainError] = {}
        for loan, fields in zip(loans, answers[1:], strict=True):
            # Loan: borrower, pool, asset, rateBps, maturity, lastAccrual, status, outstandingPrincipal, ...
            onchain[loan.loan_ref] = (
                fields
                if isinstance(fields, ChainError)
                else OnChainLoan(int(fields[4]), int(fields[6]), int(fields[7]))
            )
        return int(answers[0]), onchain

    async def _payment_times(
        self, loans: Sequence[OpenLoan], onchain: dict[int, OnChainLoan], now: int
    ) -> dict[str, tuple[Payment, ...]]:
        """The dated repayments of the loans that may have been paid as disclosed (past due by their due dates, all
        they repaid at least the disclosed total of payments): the ledger's repayments, their blocks' times read from
        the node."""
        candidates = []
        for loan in loans:
            state, schedule = onchain[loan.loan_ref], disclosed_schedule(loan.disclosure)
            found = delinquency(state.maturity, now, state.outstanding_principal > 0, schedule, paid=loan.repaid)
            if may_be_paid_as_disclosed(found, schedule, loan.repaid):
                candidates.append(loan.id)
        if not candidates:
            return {}
        return await dated(self.client, await asyncio.to_thread(self._repayments, candidates))

    def _repayments(self, loan_ids: Sequence[str]) -> dict[str, list[RecordedRepayment]]:
        with self.store.unit_of_work() as uow:
            return uow.servicing.repayments(loan_ids)

    def _announce(
        self,
        loans: Sequence[OpenLoan],
        onchain: dict[int, OnChainLoan],
        now: int,
        report: DefaultReport,
        leader: Leader | None,
        payments: Mapping[str, Sequence[Payment]],
    ) -> None:
        """Record (and announce through ``on_past_due``) each bucket a loan entered, once, in one transaction."""
        with self.store.unit_of_work() as uow:
            if leader is not None:
                uow.fence(leader.lease)
            announce_past_due(uow.servicing, uow.outbox, loans, onchain, now, report, self.on_past_due, payments)
            uow.commit()

    async def _mark_default(self, loan: OpenLoan, report: DefaultReport, leader: Leader | None) -> None:
        """``markDefault`` of a loan past its maturity plus the grace period: its attempt in flight resumed, else
        the next sent (simulated first): one the node refused or dropped, or that reverted, marked nothing."""
        found = await self._round_attempt("markDefault", default_intent_key, self._aggregator.address, loan.loan_ref,
                                          report)  # fmt: skip
        if found is None:
            return
        tx_hash = await self._send(loan.loan_ref, "markDefault", found[0], report, leader, sent=found[1] is not None)
        if tx_hash is not None:
            report.defaulted[loan.loan_ref] = tx_hash
            log.info("defaulter on chain %s: loan %s marked in default in %s", self.chain_id, loan.loan_ref, tx_hash)

    async def _cancel_unfunded(self, loan: OpenLoan, report: DefaultReport, leader: Leader | None) -> None:
        """``cancelUnfunded`` of a loan its lender never funded: its collateral goes back to the borrower. Sent only
        once the lender's own status of the offer (``funding_of``) says it was not funded: a refusal of ``/fund`` may
        be a lost answer's replay (a 409 for an offer funded meanwhile), and a report of a failed funding may be
        followed by a payout; cancelling would leave the lender unsecured for a principal it paid out."""
        found = await self._round_attempt("cancelUnfunded", cancel_intent_key, self._aggregator.address,
                                          loan.loan_ref, report)  # fmt: skip
        if found is None:
            await self._hold(loan, report, leader)
            return
        key, sent = found[0], found[1] is not None
        if not sent:  # a cancel in flight is resumed, not asked again; the next after one not taken is decided anew
            await self._hold(loan, report, leader)
            doubt = await self._lender_doubts(loan)
            if doubt is not None:
                report.skipped[loan.loan_ref] = f"{UNFUNDED}; not cancelled: {doubt}"
                log.error("defaulter on chain %s: loan %s (%s): %s", self.chain_id, loan.loan_ref, loan.id,
                          report.skipped[loan.loan_ref])  # fmt: skip
                return
        tx_hash = await self._send(loan.loan_ref, "cancelUnfunded", key, report, leader, sent=sent)
        if tx_hash is None:  # the contract refuses it, or it is not confirmed yet: an operator looks
            report.skipped[loan.loan_ref] = f"{UNFUNDED}; not cancelled: {report.skipped[loan.loan_ref]}"
            log.error("defaulter on chain %s: loan %s (%s): %s", self.chain_id, loan.loan_ref, loan.id,
                      report.skipped[loan.loan_ref])  # fmt: skip
            return
        report.cancelled[loan.loan_ref] = tx_hash
        log.info(
            "defaulter on chain %s: loan %s (%s), never funded by its lender, cancelled in %s: collateral released",
            self.chain_id, loan.loan_ref, loan.id, tx_hash,
        )  # fmt: skip

    async def _hold(self, loan: OpenLoan, report: DefaultReport, leader: Leader | None) -> None:
        """``holdLiquidation`` of an unfunded loan or one whose funding is pending, once: until it is cancelled (or
        funded, which releases the hold), nobody may liquidate it — the CollateralManager's ``liquidate`` is open to
        anyone, and its seized collateral would pay the lender that may never have paid the borrower out. Sent unless
        an attempt is in flight, confirmed or barred (``current_attempt``): one the node refused or dropped, or that
        reverted, is followed by the next. A hold the contract refuses (the loan is in default already) or not
        confirmed yet is logged; the cancel goes on."""
        found = await self._round_attempt("holdLiquidation", hold_intent_key, self._collateral.address,
                                          loan.loan_ref, report)  # fmt: skip
        if found is None or found[1] is not None:
            return
        key, scratch = found[0], DefaultReport(report.block, report.timestamp)
        tx_hash = await self._send(loan.loan_ref, "holdLiquidation", key, scratch, leader, sent=False,
                                   contract=self._collateral)  # fmt: skip
        if tx_hash is None:
            log.warning("defaulter on chain %s: loan %s (%s): liquidation not held: %s", self.chain_id,
                        loan.loan_ref, loan.id, scratch.skipped.get(loan.loan_ref))  # fmt: skip
            return
        report.held[loan.loan_ref] = tx_hash
        log.info("defaulter on chain %s: loan %s (%s): %s: liquidation held in %s", self.chain_id, loan.loan_ref,
                 loan.id, left_alone(loan), tx_hash)  # fmt: skip

    async def _release_funded(self, loans: Sequence[OpenLoan], report: DefaultReport, leader: Leader | None) -> None:
        """``releaseLiquidationHold`` of each loan the job held while its funding was pending (or unfunded) and
        whose lender has funded it since (serviced now: ``loans``): it is liquidated like any other from now on. A
        release not done in time, or not taken (refused, dropped, reverted), is logged and tried again next round."""
        held = await asyncio.to_thread(self._held_loans)
        for loan in loans:
            if loan.pool is not None or loan.loan_ref not in held:
                continue
            release = ("releaseLiquidationHold", release_intent_key, self._collateral.address, loan.loan_ref, report)
            if await self._round_attempt(*release) is None:
                continue
            try:
                await self.release_hold(loan.loan_ref, within=self.settings.receipt_timeout, leader=leader)
            except ChainError as err:
                report.skipped[loan.loan_ref] = f"funded; its liquidation hold not released yet: {err}"
                log.warning("defaulter on chain %s: loan %s (%s): %s", self.chain_id, loan.loan_ref, loan.id,
                            report.skipped[loan.loan_ref])  # fmt: skip
                continue
            report.released.append(loan.loan_ref)
            log.info("defaulter on chain %s: loan %s (%s) funded: its liquidation hold released", self.chain_id,
                     loan.loan_ref, loan.id)  # fmt: skip

    def _held_loans(self) -> set[int]:
        with self.store.unit_of_work() as uow:
            return uow.servicing.held_loans(self.chain_id, self._collateral.address)

    async def release_hold(self, loan_ref: int, *, within: float | None = None, leader: Leader | None = None) -> None:
        """``releaseLiquidationHold`` of a loan now funded — an admin settled it as funded
        (``aggregator.funding_settlement``), or its lender answered the funding instruction at last: a hold still on
        its way is waited for first (it would land after the release), then released when the CollateralManager holds
        the loan; liquidations go on. A release in flight or confirmed is resumed, else the next attempt is sent
        (``current_attempt``): one the node refused or dropped, or that reverted, released nothing. ``leader``: the
        job's lease, fenced before the send.

        Raises:
            ChainError: the hold is not mined, or the release not sent or mined, within the wait (asking again
                resumes the same transactions, or sends the next attempt of a release not taken).
        """
        store, manager = self.operator.store, self._collateral.address
        hold, held = await current_attempt(store, partial(hold_intent_key, self.chain_id, manager, loan_ref))
        try:
            if held is not None:  # else every hold sent was refused, dropped or reverted: nothing held by them
                await self.operator.wait(hold, within)
        except ConfirmationTimeout:
            raise
        except ChainError:  # the hold was barred: nothing held by it
            pass
        if not await liquidation_held(self.client, self.record, loan_ref):
            return
        report = DefaultReport(0, 0)
        key, sent = await current_attempt(store, partial(release_intent_key, self.chain_id, manager, loan_ref))
        if await self._send(loan_ref, "releaseLiquidationHold", key, report, leader, within=within,
                            sent=sent is not None, contract=self._collateral) is None:  # fmt: skip
            raise ChainError(f"the liquidation hold of loan {loan_ref} was not released: {report.skipped[loan_ref]}")

    async def _lender_doubts(self, loan: OpenLoan) -> str | None:
        """None when the loan's lender says its offer was not funded; else why the loan is not cancelled now."""
        if self.funding_of is None or loan.provider_id is None or loan.provider_ref is None:
            return f"no lender to confirm it was not funded: an admin settles it with the lender ({SETTLE})"
        try:
            state = await self.funding_of(loan.provider_id, loan.provider_ref)
        except Exception as err:  # the lender's adapter, whatever it raises: asked again next round
            return f"{loan.provider_id} did not say whether it funded the loan ({type(err).__name__}); asked again"
        if state not in NOT_FUNDED:
            return f"{loan.provider_id} says the offer is {state.value}: an admin settles it with the lender ({SETTLE})"
        return None

    async def cancel_refusal(self, loan_ref: int) -> str | None:
        """Why the contract would refuse ``cancelUnfunded(loan_ref)`` now (its simulation's revert), or None: it
        would not, or a cancel of the loan is in flight or confirmed (it is resumed, not decided again; one the node
        refused or dropped, or that reverted, is followed by the next attempt, decided anew)."""
        _, sent = await self._attempt(cancel_intent_key, loan_ref)
        if sent:
            return None
        return await self._simulate(Call.function(self._aggregator, "cancelUnfunded", loan_ref))

    async def cancel(self, loan_ref: int, *, within: float | None = None) -> CancelOutcome:
        """``cancelUnfunded(loan_ref)`` now, without asking the loan's lender: an admin settled with the lender that
        it did not fund the loan (``aggregator.funding_settlement``). Sent under the job's own intent key, so it and
        a round's cancel of the same loan are one transaction; simulated first, its receipt applied to the ledger.

        Raises:
            LoanNotCancellable: the contract refuses it (something was repaid on it, it is in default or closed).
            ChainError: the node refused or dropped it (asked again, the next attempt is sent), or did not answer
                (asked again, the same intent resumes).
        """
        report, (key, sent) = DefaultReport(0, 0), await self._attempt(cancel_intent_key, loan_ref)
        tx_hash = await self._send(loan_ref, "cancelUnfunded", key, report, None, within=within, sent=sent)
        if tx_hash is not None:
            return CancelOutcome(tx_hash, confirmed=True)
        failed = report.errors.get(loan_ref)
        if isinstance(failed, ConfirmationTimeout):  # sent, not mined within the wait: the job resumes it
            return CancelOutcome(None, confirmed=False)
        if failed is not None and not isinstance(failed, TransactionReverted):
            raise failed  # the node refused or dropped it, or did not answer: not the contract's refusal (503)
        raise LoanNotCancellable(loan_ref, report.skipped[loan_ref])

    async def _attempt(self, key_of: Callable[[int, str, int, int], str], loan_ref: int) -> tuple[str, bool]:
        """The key of the attempt at the operator's ``markDefault`` or ``cancelUnfunded`` of ``loan_ref`` (``key_of``:
        ``default_intent_key`` or ``cancel_intent_key``) to resume or send now, and whether it was sent (or barred):
        the first not refused, dropped nor reverted (``current_attempt``)."""
        attempts = partial(key_of, self.chain_id, self._aggregator.address, loan_ref)
        key, intent = await current_attempt(self.operator.store, attempts)
        return key, intent is not None

    async def _send(
        self,
        loan_ref: int,
        function: str,
        key: str,
        report: DefaultReport,
        leader: Leader | None,
        within: float | None = None,
        sent: bool | None = None,
        contract: Any = None,
    ) -> str | None:
        """The operator's ``function(loan_ref)``, sent once under the intent ``key``: simulated before the first
        send, fenced by the lease, its receipt applied to the ledger. Returns the transaction hash, or None with the
        reason in ``report.skipped`` (a simulated revert, a refusal, or no receipt within ``within``, by default the
        settings' ``receipt_timeout``: resumed next round); what a send raised is in ``report.errors``. ``sent``:
        whether the intent exists, when the caller has just read it (else it is read here)."""
        call = Call.function(self._aggregator if contract is None else contract, function, loan_ref)
        if sent is None:
            sent = await self.operator.store.get_intent(key) is not None
        if not sent:  # simulate before the first send only: a resumed intent is already decided
            refused = await self._simulate(call)
            if refused is not None:
                report.skipped[loan_ref] = f"{function} would revert: {refused}"
                log.warning("defaulter on chain %s: loan %s: %s", self.chain_id, loan_ref, refused)
                return None
        if leader is not None:
            await leader.fence()
        try:
            wait = self.settings.receipt_timeout if within is None else within
            receipt = await self.operator.submit_and_wait(key, call, within=wait)
        except ChainError as err:  # refused, reverted, or not confirmed in time (resumed next round): the rest go on
            report.skipped[loan_ref], report.errors[loan_ref] = str(err), err
            self.funds.saw(err)
            log.warning("defaulter on chain %s: %s of loan %s: %s", self.chain_id, function, loan_ref, err)
            return None
        await apply_receipt(self.database, self.client.w3, self.record, self.chain_id, receipt.tx_hash)
        return receipt.tx_hash

    async def _simulate(self, call: Call) -> str | None:
        assert call.to is not None
        request = {"from": self.operator.signer.address, "to": call.to, "data": "0x" + call.data.hex()}
        return await revert_of(self.client.provider, request)


async def liquidation_held(client: ChainClient, record: DeploymentRecord, loan_ref: int) -> bool:
    """Whether the CollateralManager holds the loan's liquidation (``holdLiquidation``), at the latest block."""
    manager = record.address("CollateralManager")
    (held,) = await read_views(client.provider, [view("CollateralManager", "liquidationHeld").call(manager, loan_ref)])
    return bool(held)
