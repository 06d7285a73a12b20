"""Accepting a quote, as a saga whose steps are persisted (``aggregator.accept_saga``): verify the borrower's
EIP-712 acceptance, re-screen and simulate ``openLoan`` (or ``openLoanWithPermit``), then lock the quote in one
transaction with the screening's records (superseding the request's other quotes, checking the borrower's exposure),
reserve with a traditional lender, relay the call, record the loan from the confirmed ``LoanOpened`` (read from the
receipt the relay's watcher fetched), and only then tell a traditional lender to fund it.

Each database transaction of an accept is a wait on a loaded machine, so the steps that change nothing outside our
records share one: the lock carries the screening's decision records and the step the accept has reached
(``simulated``, or for a pool quote ``submitted``: only the intent's submission follows, and an accept found at
``submitted`` without its intent was never sent); the loan's ledger record carries the step that saw it mined.

Each accept is driven by one process at a time under a lease on its record; a process that dies stops renewing
it and start-up (``resume_unfinished``) drives every unfinished accept whose lease ran out to its end. A quote goes
back to ``offered`` only when its transaction can no longer be mined: it was never submitted, or its intent failed
and the offer nonce is still unused on-chain.

The service drives the steps; beside it, private modules hold the parts: ``_accept_chain`` (the acceptance checked,
the ``openLoan`` call built and simulated, the loan read from its receipt), ``_accept_lender`` (a traditional
lender's reserve, fund and cancel), ``_accept_lease`` (each step persisted, fenced by the owner, the lease
renewed) and ``_accept_answer`` (what the borrower is answered)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from aggregator._accept_answer import Accepted, accepted_answer, funded_or_failed
from aggregator._accept_chain import (
    TERMINAL_CHAIN_ERRORS,
    bar_unsent,
    loan_from_receipt,
    nonce_used,
    open_loan_call,
    signature_bytes,
    signed_by_borrower,
    simulate_open,
    verify_acceptance,
)
from aggregator._accept_lease import AcceptRecords, LeaseLost
from aggregator._accept_lender import (
    LENDER_ATTEMPTS,
    LENDER_BACKOFF,
    FundingRefused,
    LenderPhases,
    ReservationUnanswered,
)
from aggregator.accept_saga import (
    CANCEL_FAILED,
    FUND_REFUSED,
    IN_FLIGHT,
    RESERVATION_DECLINED,
    RESERVATION_UNKNOWN,
    TRADITIONAL,
    UNDELIVERED_FUNDING,
    WITHDRAWN,
    AcceptRecord,
    AcceptStep,
    AcceptStore,
    LoanFacts,
    LockRefused,
    QuoteView,
    Screening,
    ScreeningLog,
    advance,
    is_done,
)
from aggregator.assets import AssetRegistry
from aggregator.borrowers import BorrowerFile
from aggregator.errors import (
    AcceptInProgress,
    ChainRejected,
    ComplianceDenied,
    LoanNotFound,
    ProviderRefused,
    QuoteExpired,
    QuoteNotAcceptable,
    QuoteNotFound,
    QuoteSuperseded,
    QuoteWithdrawn,
)
from aggregator.exposure import PRODUCT_OF_KIND, ExposureLimits, check_exposure
from aggregator.loans import LoanRecord, LoanScope, LoanStore
from aggregator.permit import CollateralPermit, check_permit
from aggregator.platform import ChainRuntime
from aggregator.quoting import NO_IDENTITY
from chain.errors import ChainError, IntentConflict, TransactionReverted
from chain.transactions import Call
from compliance import ComplianceService, Product
from providers.base import ProviderAdapter, ProviderError

log = logging.getLogger(__name__)

RELAY_TIMEOUT = 120.0  # seconds to confirmation before the accept answers "in progress" (the saga carries on)
DEFAULT_LEASE = timedelta(seconds=30)
#: how long an undelivered funding instruction is sent again before the loan is settled as unfunded (docs/servicing.md)
FUNDING_WINDOW = timedelta(hours=24)
KILL_POINTS = frozenset({"locked", "screened", "simulated", "reserved", "submitted", "sent", "mined", "recorded"})
__all__ = [
    "DEFAULT_LEASE",
    "KILL_POINTS",
    "LENDER_ATTEMPTS",
    "LENDER_BACKOFF",
    "RELAY_TIMEOUT",
    "AcceptanceService",
    "Accepted",
]


class AcceptanceService:
    """``kill_at`` is a test hook: the process SIGKILLs itself at that named point of the saga (KILL_POINTS)."""

    def __init__(
        self,
        store: AcceptStore,
        chains: dict[str, ChainRuntime],
        providers: dict[str, ProviderAdapter],
        compliance: ComplianceService,
        assets: AssetRegistry,
        *,
        loans: LoanStore,
        screenings: ScreeningLog,
        limits: ExposureLimits | None = None,
        lease: timedelta = DEFAULT_LEASE,
        relay_timeout: float = RELAY_TIMEOUT,
        kill_at: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lender_backoff: float = LENDER_BACKOFF,
        funding_window: timedelta = FUNDING_WINDOW,
    ) -> None:
        if kill_at and kill_at not in KILL_POINTS:
            raise ValueError(f"unknown kill point {kill_at!r}; known: {', '.join(sorted(KILL_POINTS))}")
        self._store, self._loans, self._screenings = store, loans, screenings
        self._chains, self._providers = chains, providers
        self._compliance, self._assets = compliance, assets
        self._limits = limits or ExposureLimits(tier_limits=compliance.tier_limits)
        self._lease, self._relay_timeout, self._kill_at, self._clock = lease, relay_timeout, kill_at, clock
        self._lender, self._funding_window = LenderPhases(providers, lender_backoff), funding_window
        self.owner = f"accept-{uuid.uuid4().hex[:16]}"
        self._records = AcceptRecords(store, self.owner, lease, clock)
        self._driving: dict[str, asyncio.Task[Accepted | None]] = {}

    def close(self) -> None:
        """Release the accept records' threads (``Platform.close``)."""
        self._records.close()

    # ------------------------------------------------------------------ the request path

    async def accept(
        self,
        account: BorrowerFile,
        quote_id: str,
        signature_hex: str,
        permit: CollateralPermit | None = None,
    ) -> Accepted:
        opening = await self._records.run(self._opening, account, quote_id, signature_hex, permit is None)
        if isinstance(opening, Accepted):
            return funded_or_failed(opening)
        quote, previous, signature, screening = opening
        chain = self._chains.get(quote.chain_name)
        if chain is None:  # quoted on a chain the platform no longer serves (the chains file changed since)
            raise QuoteNotAcceptable(quote.id, f"on {quote.chain_name}, a chain this platform no longer serves,")
        if screening is None:  # not signed by the borrower's key, or a permit to check: the chain is asked first
            await verify_acceptance(chain, quote, signature)
            if permit is not None:  # refused here, naming what is wrong, rather than by the chain after the lock
                await check_permit(chain.w3, quote, permit)
            screening = await self._records.run(self._screen, account, quote)
        call = open_loan_call(chain, quote, signature, permit)
        # nothing is locked, let alone promised to a lender, that the chain refuses; the estimate goes with the call
        try:
            call = await simulate_open(chain, call, quote.kind)
        except ChainRejected:
            # another accept of this quote (another process's) may have locked it, and even opened its loan, since
            # it was read: that accept's answer, not the chain's refusal to open the same offer twice
            taken = await self._records.run(self._taken_meanwhile, account.id, quote_id)
            if taken is None:
                raise
            return funded_or_failed(taken)
        record = await self._records.run(self._lock, account, quote, previous, screening)
        task = asyncio.create_task(self._drive_new(quote, record, call))
        self._driving[quote_id] = task
        task.add_done_callback(lambda _: self._driving.pop(quote_id, None))
        try:
            async with asyncio.timeout(self._relay_timeout):
                accepted = await asyncio.shield(task)
        except TimeoutError:
            raise AcceptInProgress(quote_id, "the openLoan transaction is not confirmed yet") from None
        if accepted is None:
            raise AcceptInProgress(quote_id, "another process is driving this accept")
        return funded_or_failed(accepted)

    def _opening(
        self, account: BorrowerFile, quote_id: str, signature_hex: str, plain: bool
    ) -> Accepted | tuple[QuoteView, AcceptRecord | None, bytes, Screening | None]:
        """The accept's first steps, in one hop onto the accepts' threads: the quote and its accept record read (a
        repeated accept's loan returned), the quote checked, and — when the acceptance is signed by the borrower's key
        and there is no permit (``plain``) to check on the chain — the borrower re-screened. Returns the quote, its
        accept record, the signature and the screening (None when the chain must verify the acceptance first)."""
        quote, previous = self._load(account.id, quote_id)
        if quote.status == "accepted" and previous is not None and previous.loan_id is not None:
            return accepted_answer(quote, previous)  # a repeated accept answers as the first: the loan, or its failure
        if previous is not None and previous.step is AcceptStep.CANCELLED and previous.lender_state == CANCEL_FAILED:
            # a second reservation would find the first still held: recovery cancels it first
            raise AcceptInProgress(quote_id, "the lender's reservation of the last attempt is still being cancelled")
        self._check_acceptable(quote)
        signature = signature_bytes(signature_hex)
        if plain and signed_by_borrower(quote, signature):
            return quote, previous, signature, self._screen(account, quote)
        return quote, previous, signature, None

    def _load(self, borrower_id: str, quote_id: str) -> tuple[QuoteView, AcceptRecord | None]:
        with self._store.unit_of_work() as uow:
            found = uow.accepts.quote_and_record(quote_id)
        if found is None or found[0].borrower_id != borrower_id:
            raise QuoteNotFound(quote_id)
        return found

    def _taken_meanwhile(self, borrower_id: str, quote_id: str) -> Accepted | None:
        """After the chain refused the open: the loan, when another accept opened it since the quote was read;
        AcceptInProgress while another accept holds the quote; None when no other accept took it (the refusal
        stands)."""
        quote, record = self._load(borrower_id, quote_id)
        if quote.status == "accepted" and record is not None and record.loan_id is not None:
            return accepted_answer(quote, record)
        if quote.status in ("accepting", "accepted"):
            raise AcceptInProgress(quote_id, "another accept of this quote took it meanwhile")
        return None

    def _check_acceptable(self, quote: QuoteView) -> None:
        if quote.status == "accepting":
            raise AcceptInProgress(quote.id, "this quote is being accepted")
        if quote.status == "superseded":
            raise QuoteSuperseded(quote.id)
        if quote.status == WITHDRAWN:
            raise QuoteWithdrawn(quote.id, quote.provider_id)
        if quote.status != "offered":
            raise QuoteNotAcceptable(quote.id, quote.status)
        if quote.expires_at <= self._clock():
            raise QuoteExpired(quote.id)

    def _lock(
        self, account: BorrowerFile, quote: QuoteView, previous: AcceptRecord | None, screening: Screening
    ) -> AcceptRecord:
        """One transaction: quote and request to ``accepting``, the request's other quotes superseded, the
        exposure checked, the screening's decision records written, and the accept record at ``simulated`` — at
        ``submitted`` for a pool quote, whose intent is submitted next (no lender to reserve first)."""
        now = self._clock()
        step = AcceptStep.SIMULATED if quote.kind == TRADITIONAL else AcceptStep.SUBMITTED
        record = AcceptRecord(
            quote_id=quote.id,
            request_id=quote.request_id,
            borrower_id=quote.borrower_id,
            kind=quote.kind,
            chain_name=quote.chain_name,
            attempt=previous.attempt + 1 if previous is not None else 1,
            step=step,
            owner=self.owner,
            lease_until=now + self._lease,
            updated_at=now,
        )
        with self._store.unit_of_work() as uow:
            try:
                uow.accepts.lock(quote, record)
            except LockRefused as refused:
                if refused.reason == "superseded":
                    raise QuoteSuperseded(quote.id) from None
                if refused.status == "accepting":
                    raise AcceptInProgress(quote.id, "this quote is being accepted") from None
                if refused.status == WITHDRAWN:  # by its lender since it was read, or its lender left
                    self._withdraw(quote.id)
                    raise QuoteWithdrawn(quote.id, quote.provider_id) from None
                raise QuoteNotAcceptable(quote.id, refused.status) from None
            exposure = uow.accepts.exposure(quote.borrower_id, excluding_quote=quote.id)
            check_exposure(exposure, quote, account.kyc, self._limits, self._assets)
            uow.accepts.record_screening(screening)
            uow.commit()
        return record

    def _withdraw(self, quote_id: str) -> None:
        """Show a quote the lock refused as withdrawn so (a quote written after its lender was deregistered, which
        the deregistration could not withdraw): ``offered`` no longer, never ranked for an accept again."""
        with self._store.unit_of_work() as uow:
            uow.accepts.withdraw(quote_id)
            uow.commit()

    async def _drive_new(self, quote: QuoteView, record: AcceptRecord, call: Call) -> Accepted | None:
        # the lock persisted the screening and the simulation's outcome with it
        for point in ("locked", "screened", "simulated"):
            self._kill_point(point, quote.id)
        async with self._records.renewing(record):
            try:
                record = await self._before_relay(quote, record)
            except LeaseLost:
                return None
            except BaseException as err:
                # Nothing was submitted: the quote can safely go back to offered (a lender's reservation cancelled).
                await self._cancel(quote, record, _reason(err))
                raise
            chain = self._chains[quote.chain_name]
            # Persisted intent first (inside submit): from here the quote returns to offered only once the intent
            # failed and the offer nonce is unused; a refusal at submit settles the intent, which the wait reports.
            try:
                self._records.ensure_held(quote.id)
                with contextlib.suppress(*TERMINAL_CHAIN_ERRORS):
                    await chain.transactions.submit(record.intent_key, call)
            except (LeaseLost, IntentConflict):
                # taken over meanwhile; the process that took it barred the intent first, so nothing was sent
                log.warning("accept of %s was taken over before its transaction was sent", quote.id)
                return None
            self._kill_point("sent", quote.id)
            return await self._relay_and_record(quote, record, submitted_here=True)

    async def _before_relay(self, quote: QuoteView, record: AcceptRecord) -> AcceptRecord:
        """A traditional lender's reservation, persisted with the step ``submitted`` (a pool accept is there
        already): BEFORE the intent exists, so that an accept found at 'submitted' with no intent was never sent."""
        if quote.kind == TRADITIONAL:
            self._records.ensure_held(quote.id)  # a reservation is not made for an accept another process took
            record = await self._reserve(quote, record)
            record = await self._step(record, AcceptStep.SUBMITTED, lender_state="reserved")
            self._kill_point("reserved", quote.id)
        self._kill_point("submitted", quote.id)
        return record

    # ------------------------------------------------------------------ from the relay on (also on recovery)

    async def _relay_and_record(
        self, quote: QuoteView, record: AcceptRecord, *, submitted_here: bool = False, within: float | None = None
    ) -> Accepted | None:
        """Wait for the intent; record the loan once; fund a traditional loan. Returns the loan (None when the
        accept was handed to another process or is still in flight). ``submitted_here``: this process submitted the
        intent just now (it exists: not read again). ``within``: seconds to wait for the confirmation before
        ConfirmationTimeout (None: for as long as it takes, the request path's own continuation)."""
        loan = None
        try:
            facts = None
            if record.step is AcceptStep.SUBMITTED:
                facts = await self._await_mined(quote, record, submitted_here, within)
                self._kill_point("mined", quote.id)
            if record.step in IN_FLIGHT:  # submitted, or 'mined' (persisted by an earlier version of this saga)
                record, loan = await self._record(quote, record, facts)
            if record.step is AcceptStep.RECORDED and quote.kind == TRADITIONAL:
                record = await self._fund(quote, record)
        except LeaseLost:
            return None
        return None if record.loan_id is None else accepted_answer(quote, record, loan)

    async def _await_mined(
        self, quote: QuoteView, record: AcceptRecord, submitted_here: bool, within: float | None = None
    ) -> LoanFacts:
        chain = self._chains[quote.chain_name]
        # read first: barring is a write (SQLite's write lock); an intent this process just submitted exists
        if (
            not submitted_here
            and await chain.transactions.store.get_intent(record.intent_key) is None
            and await bar_unsent(chain, record.intent_key)
        ):
            # 'submitted' was persisted but the intent was not (the process died, or lost the lease, before it): now
            # barred, so nothing of it can be sent and the quote can go back to offered.
            await self._cancel(quote, record, "the openLoan intent was never persisted")
            raise ChainRejected("the accept was interrupted before its transaction was sent; accept again")
        try:
            receipt = await chain.transactions.wait(record.intent_key, within=within)
        except TERMINAL_CHAIN_ERRORS as err:
            if await nonce_used(chain, quote):
                # The offer's nonce is spent although our intent failed: the loan was opened by another transaction
                # (the ledger links it by offerDigest); the quote must not be offered again.
                await self._step(record, AcceptStep.FAILED, error=f"intent failed, offer nonce used: {err}")
                raise AcceptInProgress(quote.id, "the offer was used on-chain by another transaction") from err
            await self._cancel(quote, record, _reason(err))
            if isinstance(err, TransactionReverted):
                raise ChainRejected(str(err)) from err
            # Refused by the node or dropped: the relayer's side (its funds, its fees), not the borrower's offer. A
            # 503 that names no node message and is not kept for the Idempotency-Key: the quote is offered again.
            log.error("accept of %s: the relayer's transaction did not go through: %s", quote.id, err)
            raise
        return await loan_from_receipt(chain, quote, receipt)

    async def _record(
        self, quote: QuoteView, record: AcceptRecord, facts: LoanFacts | None
    ) -> tuple[AcceptRecord, LoanRecord | None]:
        """The loan, its ledger entries and the step ``recorded`` in one transaction, fenced by the owner; the loan
        as recorded (read in that transaction)."""
        if facts is None:  # resumed at 'mined': the confirmed intent's receipt is in the chain store
            chain = self._chains[quote.chain_name]
            receipt = await chain.transactions.wait(record.intent_key, within=None)
            facts = await loan_from_receipt(chain, quote, receipt)
        now = self._clock()
        recorded = advance(record, AcceptStep.RECORDED, now, lease_until=now + self._lease, tx_hash=facts.tx_hash)

        def work() -> tuple[str, LoanRecord | None]:
            with self._store.unit_of_work() as uow:
                loan_id = uow.accepts.record_loan(facts, recorded)
                if loan_id is None:  # taken over by another process: nothing written
                    raise LeaseLost(record.quote_id)
                loan = uow.accepts.loan(loan_id)
                uow.commit()
                return loan_id, loan

        loan_id, loan = await self._records.run(work)
        self._records.extended(quote.id, recorded.lease_until)
        self._kill_point("recorded", quote.id)
        return replace(recorded, loan_id=loan_id), loan

    # ------------------------------------------------------------------ the lender's two phases

    async def _reserve(self, quote: QuoteView, record: AcceptRecord) -> AcceptRecord:
        """Ask the lender to hold the offer, persisted as ``reserved`` (lender state unknown) BEFORE asking: a crash,
        a lost lease or a failed write after the lender reserved would otherwise leave the record at ``simulated``,
        whose cancellation does not ask the lender, and the lender holding the offer for ever. An answer or none
        may have reserved it, so the cancellation that follows releases it under the same key (retried until the
        lender takes it); only a reservation the lender declined has nothing to release."""
        record = await self._step(record, AcceptStep.RESERVED, lender_state=RESERVATION_UNKNOWN)
        try:
            await self._lender.reserve(quote, record)
        except ReservationUnanswered:
            raise
        except ProviderRefused:
            await self._step(record, AcceptStep.RESERVED, lender_state=RESERVATION_DECLINED)
            raise
        return record

    async def _fund(self, quote: QuoteView, record: AcceptRecord) -> AcceptRecord:
        """Tell the lender to fund the loan now confirmed on-chain; a failure leaves the accept at 'recorded' for
        recovery to retry (the instruction is idempotent under the same key) until the funding window has passed
        since the loan was recorded: then it is settled ``fund-refused`` (``UNDELIVERED_FUNDING``), never sent again,
        and the loan is unfunded, cancelled or settled by an admin as any other. The answer is settled unless the
        lender's ``offer.funding_failed`` was recorded first (``aggregator.offer_events``): that stands, and an answer
        contradicting it is logged as an error for an operator."""
        try:
            await self._lender.fund(quote, record)
        except FundingRefused as err:  # answered: retrying the same instruction gets the same answer
            log.error("accept %s: loan %s opened on-chain, and %s", quote.id, record.loan_id, err)
            return await self._records.settle_funding(
                record, AcceptStep.RECORDED, error=str(err), lender_state=FUND_REFUSED
            )
        except (ProviderError, ProviderRefused) as err:
            if await asyncio.to_thread(self._past_funding_window, record):
                log.error("accept %s: loan %s: %s: %s", quote.id, record.loan_id, UNDELIVERED_FUNDING, err)
                error = f"{UNDELIVERED_FUNDING} ({self._funding_window}): {err}"
                return await self._records.settle_funding(
                    record, AcceptStep.RECORDED, error=error[:500], lender_state=FUND_REFUSED
                )
            log.warning("accept %s: funding instruction not delivered: %s", quote.id, err)
            error = f"funding instruction not delivered: {err}"
            return await self._records.settle_funding(record, AcceptStep.RECORDED, error=error)
        settled = await self._records.settle_funding(record, AcceptStep.FUNDED, lender_state="funded")
        if settled.step is not AcceptStep.FUNDED:
            log.error(
                "accept %s: %s answered the funding instruction of loan %s with funded after reporting that its "
                "funding failed (%s): the report stands, an operator must reconcile them",
                quote.id,
                quote.provider_id,
                record.loan_id,
                settled.error,
            )
        return settled

    def _past_funding_window(self, record: AcceptRecord) -> bool:
        """Whether the funding window has passed since the accept's loan was recorded."""
        with self._loans.reading() as loans:
            loan = None if record.loan_id is None else loans.get(record.loan_id)
        return loan is not None and self._clock() - loan.created_at >= self._funding_window

    async def _cancel(self, quote: QuoteView, record: AcceptRecord, reason: str) -> None:
        """Back to offered: cancel a lender's reservation first (recorded), then release the quote."""
        current = await self._records.run(self._records.current, quote.id)
        if current is None or current.owner != self.owner:
            return
        lender_state = current.lender_state
        held = current.step in (AcceptStep.RESERVED, AcceptStep.SUBMITTED, AcceptStep.MINED)
        if quote.kind == TRADITIONAL and held and lender_state != RESERVATION_DECLINED:
            lender_state = await self._lender.cancel(quote, current)
        cancelled = advance(current, AcceptStep.CANCELLED, self._clock(), error=reason, lender_state=lender_state)

        def work() -> None:
            with self._store.unit_of_work() as uow:
                self._records.fence(uow, current)
                uow.accepts.release(cancelled, self._clock())
                uow.commit()

        with contextlib.suppress(LeaseLost):
            await self._records.run(work)

    async def _retry_cancellation(self, quote: QuoteView, record: AcceptRecord) -> None:
        """A cancelled accept whose reservation the lender did not take: ask again (the quote is already offered)."""
        state = await self._lender.cancel(quote, record)
        await self._step(record, AcceptStep.CANCELLED, lender_state=state)

    # ------------------------------------------------------------------ recovery

    async def resume_unfinished(self, limit: int = 50) -> int:
        """Claim (one row at a time) and drive every unfinished accept whose lease ran out; returns how many."""
        driven = 0
        while driven < limit:
            claimed = await self._records.run(self._records.claim_next, self._driving.keys(), self._chains.keys())
            if claimed is None:
                return driven
            record, quote = claimed
            driven += 1
            async with self._records.renewing(record):
                await self._resume(quote, record)
        return driven

    async def run_recovery(self, every: float | None = None) -> None:
        """Drive unfinished accepts now and then every ``every`` seconds (a lease that runs out later is found)."""
        interval = every if every is not None else max(1.0, self._lease.total_seconds() / 2)
        with contextlib.suppress(Exception):  # a report only: the database may be down at start
            await self.report_stranded()
        while True:
            try:
                await self.resume_unfinished()
            except Exception:
                log.exception("driving unfinished accepts failed; retrying in %.0f s", interval)
            await asyncio.sleep(interval)

    async def report_stranded(self) -> list[str]:
        """Accepts whose transaction is in flight on a chain this platform no longer serves (the chains file dropped
        it meanwhile) are not driven — only that chain can say whether the loan opened — and are logged for the
        operator, who serves the chain again until they end. Returns the chains named."""
        stranded = sorted(await self._records.run(self._records.in_flight_chains) - set(self._chains))
        for name in stranded:
            log.warning(
                "accepts in flight on chain %r, which this platform no longer serves, are left as they are: serve "
                "the chain again until they end",
                name,
            )
        return stranded

    async def _resume(self, quote: QuoteView, record: AcceptRecord) -> None:
        log.info("resuming accept of quote %s at step %s", quote.id, record.step)
        try:
            if record.step in (AcceptStep.VERIFIED, AcceptStep.SCREENED, AcceptStep.SIMULATED, AcceptStep.RESERVED):
                await self._cancel(quote, record, f"interrupted at {record.step}; nothing was sent")
            elif record.step is AcceptStep.CANCELLED:
                await self._retry_cancellation(quote, record)
            elif not is_done(record.step, record.kind, record.lender_state):
                # a bounded wait: one transaction that is not mined (its chain down, fees over the cap) must not
                # hold the recovery of every other accept; it is claimed again once its lease runs out
                await self._relay_and_record(quote, record, within=self._relay_timeout)
        except (ChainRejected, AcceptInProgress, ProviderRefused, ChainError, LeaseLost) as err:
            log.info("accept of quote %s ended: %s", quote.id, err)

    # ------------------------------------------------------------------ record keeping

    async def _step(self, record: AcceptRecord, step: AcceptStep, **changes: object) -> AcceptRecord:
        return await self._records.step(record, step, **changes)

    def _kill_point(self, name: str, quote_id: str) -> None:
        """Only on the request path (an accept begun in this process), never while recovering one."""
        if self._kill_at == name and quote_id in self._driving:
            log.warning("test hook: SIGKILL at accept point %r", name)
            os.kill(os.getpid(), signal.SIGKILL)

    # ------------------------------------------------------------------ checks

    def _screen(self, borrower: BorrowerFile, quote: QuoteView) -> Screening:
        """Re-screen the borrower with today's lists and KYC status, and the address the collateral comes from. A
        refusal is recorded at once (a transaction of its own) and raised; an allowance is recorded with the lock."""
        if borrower.identity is None:
            raise ComplianceDenied("the acceptance", [NO_IDENTITY])
        product = PRODUCT_OF_KIND.get(quote.kind, Product.DEFI)
        amount = self._assets.get(quote.asset).from_base_units(quote.principal)
        records = (
            self._compliance.screen_acceptance(
                borrower.facts(), quote.id, kyc=borrower.kyc, product=product, amount=amount
            ),
            self._compliance.screen_collateral_source(str(quote.offer["borrower"]), quote.chain_id),
        )
        screening = Screening(records, borrower.id, self._compliance.screened_list_version(records), self._clock())
        if all(record.allowed for record in records):
            return screening
        refused = self._screenings.record(records, borrower.id, screening.list_version, screening.at)
        raise ComplianceDenied("the acceptance", refused or [("compliance.review", "held for manual review")])

    def get_loan(self, loan_id: str, borrower_id: str | None) -> LoanRecord:
        """The loan's record; ``borrower_id`` None means an admin or auditor, who see every loan."""
        with self._loans.reading() as loans:
            loan = loans.get(loan_id)
        if loan is None or not LoanScope(borrower_id=borrower_id).allows(loan):
            raise LoanNotFound(loan_id)
        return loan


def _reason(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:500] if str(err) else type(err).__name__
