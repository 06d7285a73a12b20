"""Recovery of the accept saga on the in-memory fake: an accept interrupted with a lender's reservation is cancelled
with the lender; a cancellation the lender did not take (an outage) is recorded and retried — with backoff within
one pass, and pass after pass as the saga's lease runs out — until the lender takes it; a re-accept waits for it."""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from aggregator._accept_lender import LenderPhases
from aggregator.accept_saga import (
    CANCEL_FAILED,
    CANCEL_REFUSED,
    FUND_REFUSED,
    REPORTED_FUNDING_FAILURE,
    RESERVATION_DECLINED,
    UNDELIVERED_FUNDING,
    AcceptRecord,
    AcceptStep,
    InMemoryAcceptRepository,
    InMemoryAcceptStore,
    InMemoryAcceptUnitOfWork,
    InMemoryScreeningLog,
    QuoteView,
    funding_pending,
)
from aggregator.accepting import FUNDING_WINDOW, RELAY_TIMEOUT, AcceptanceService
from aggregator.assets import AssetRegistry
from aggregator.borrowers import BorrowerFile
from aggregator.errors import AcceptInProgress, FundingFailed, ProviderRefused, QuoteNotAcceptable
from aggregator.exposure import ExposureLimits
from aggregator.loans import InMemoryLoanStore, LoanRecord
from aggregator.platform import ChainRuntime
from aggregator.snapshots import rolled_back_on_exit
from chain.errors import ConfirmationTimeout
from chain.transactions import Call
from compliance import ComplianceService
from providers._exceptions import ProviderServerError
from providers.base import ProviderAdapter
from providers.models import FundingResult
from tests.support.offers import offer_fields

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=10)
BORROWER = cast(BorrowerFile, SimpleNamespace(id="b1"))


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class FlakyLender:
    """A lender whose cancel answers 503 ``outages`` times, then cancels."""

    provider_id = "sim-bank"

    def __init__(self, outages: int) -> None:
        self.outages = outages
        self.cancels: list[tuple[str, str]] = []

    async def cancel(self, provider_ref: str, idempotency_key: str) -> FundingResult:
        self.cancels.append((provider_ref, idempotency_key))
        if len(self.cancels) <= self.outages:
            raise ProviderServerError("sim-bank answered 503", 503)
        return FundingResult(self.provider_id, provider_ref, funded=True, detail="cancelled")  # the phase done


def _quote() -> QuoteView:
    return QuoteView(
        id="q1",
        request_id="r1",
        borrower_id="b1",
        provider_id="sim-bank",
        kind="traditional",
        chain_name="ethereum-local",
        chain_id=31337,
        contract="0x" + "11" * 20,
        offer={"principal": "1000000000", "nonce": "7", "providerRef": "ref-1"},
        offer_digest="0x" + "ab" * 32,
        offer_signature="0x",
        attestation={},
        attestation_signature="0x",
        disclosure={"asset": "USDC", "termDays": 30},
        status="offered",
        expires_at=START + timedelta(hours=1),
        risk_max_amount="2400",
    )


def _left_by_a_dead_process(step: AcceptStep, **changes: Any) -> AcceptRecord:
    """Quote q1's traditional accept at ``step``, its process dead (the lease ran out)."""
    record = AcceptRecord(
        "q1",
        "r1",
        "b1",
        "traditional",
        "ethereum-local",
        1,
        step,
        "dead-process",
        START - timedelta(seconds=1),
        START - timedelta(seconds=5),
    )
    return replace(record, **changes)


def _interrupted_at_reserved(store: InMemoryAcceptStore) -> None:
    """A process locked the quote, had the lender reserve it, and died (its lease has run out)."""
    quote = _quote()
    store.tables.requests["r1"] = "quoted"
    store.tables.quotes[quote.id] = quote
    store.tables.quotes["q2"] = replace(quote, id="q2", provider_id="pool:ethereum-local:USDC", kind="pool")
    record = AcceptRecord(
        quote_id="q1",
        request_id="r1",
        borrower_id="b1",
        kind="traditional",
        chain_name="ethereum-local",
        attempt=1,
        step=AcceptStep.RESERVED,
        owner="dead-process",
        lease_until=START - timedelta(seconds=1),
        updated_at=START - timedelta(seconds=5),
        lender_state="reserved",
    )
    with store.unit_of_work() as uow:
        uow.accepts.lock(quote, record)
        uow.commit()


def _service(
    store: InMemoryAcceptStore,
    lender: FlakyLender,
    clock: Clock,
    chains: dict[str, ChainRuntime] | None = None,
    relay_timeout: float = RELAY_TIMEOUT,
    loans: InMemoryLoanStore | None = None,
) -> AcceptanceService:
    # Recovery of an accept that sent nothing touches neither the chains nor compliance.
    return AcceptanceService(
        store,
        chains or {},
        cast(dict[str, ProviderAdapter], {"sim-bank": lender}),
        cast(ComplianceService, None),
        AssetRegistry([]),
        loans=loans or InMemoryLoanStore(),
        screenings=InMemoryScreeningLog(),
        limits=ExposureLimits(),
        lease=LEASE,
        relay_timeout=relay_timeout,
        clock=clock,
        lender_backoff=0.0,
    )


def _record(store: InMemoryAcceptStore) -> AcceptRecord:
    return store.tables.records["q1"]


async def test_an_interrupted_reservation_is_cancelled_and_the_quotes_offered_again() -> None:
    store, lender, clock = InMemoryAcceptStore(), FlakyLender(outages=1), Clock()
    _interrupted_at_reserved(store)
    assert await _service(store, lender, clock).resume_unfinished() == 1
    assert lender.cancels == [("ref-1", "q1:1"), ("ref-1", "q1:1")]  # one outage, retried under the same key
    assert (_record(store).step, _record(store).lender_state) == (AcceptStep.CANCELLED, "cancelled")
    assert {q.status for q in store.tables.quotes.values()} == {"offered"}
    clock.now += LEASE * 2
    assert await _service(store, lender, clock).resume_unfinished() == 0  # nothing left to drive


async def test_a_cancellation_the_lender_did_not_take_is_retried_until_it_does() -> None:
    store, lender, clock = InMemoryAcceptStore(), FlakyLender(outages=4), Clock()
    _interrupted_at_reserved(store)
    service = _service(store, lender, clock)
    assert await service.resume_unfinished() == 1
    first = _record(store)
    assert (first.step, first.lender_state) == (AcceptStep.CANCELLED, CANCEL_FAILED)
    assert len(lender.cancels) == 3  # the backoff's attempts within one pass
    assert store.tables.quotes["q1"].status == "offered", "nothing can be mined: the quote is offered again"

    # A re-accept of the quote waits for the old reservation's cancellation (409, not a second reservation).
    with pytest.raises(AcceptInProgress, match="cancel"):
        await service.accept(BORROWER, "q1", "0x" + "00" * 65)

    assert await service.resume_unfinished() == 0  # not before the record's lease has run out
    clock.now += LEASE + timedelta(seconds=1)
    assert await service.resume_unfinished() == 1
    assert len(lender.cancels) == 5
    assert {key for _, key in lender.cancels} == {"q1:1"}
    assert (_record(store).step, _record(store).lender_state) == (AcceptStep.CANCELLED, "cancelled")
    clock.now += LEASE * 2
    assert await service.resume_unfinished() == 0


class DecliningLender:
    """A lender that declines every reservation with its own words, or does not answer at all."""

    provider_id = "sim-bank"

    def __init__(self, answers: bool) -> None:
        self.answers = answers

    async def reserve(self, offer: object, idempotency_key: str) -> FundingResult:
        if not self.answers:
            raise ProviderServerError("http://10.0.0.7:8600/reserve answered 502", 502)
        return FundingResult(self.provider_id, "ref-1", funded=False, detail="internal score 412 under 500 for b1")


@pytest.mark.parametrize("answers", [True, False], ids=["declined", "unanswered"])
async def test_a_lenders_own_words_reach_the_log_but_not_the_borrowers_409(
    answers: bool, caplog: pytest.LogCaptureFixture
) -> None:
    store = InMemoryAcceptStore()
    _interrupted_at_reserved(store)
    phases = LenderPhases(cast(dict[str, ProviderAdapter], {"sim-bank": DecliningLender(answers)}), backoff=0.0)
    quote = _quote()
    quote = replace(quote, offer={**quote.offer, "rateBps": 900, "originationFee": 0})
    with caplog.at_level("WARNING"), pytest.raises(ProviderRefused) as refused:
        await phases.reserve(quote, _record(store))
    said = "internal score 412" if answers else "10.0.0.7"
    assert said not in str(refused.value)
    assert str(refused.value).startswith("sim-bank ")
    assert said in caplog.text  # kept for the operator


class RefusingLender:
    """A lender that answers the funding instruction and the cancellation, each with a refusal (a 409, say)."""

    provider_id = "sim-bank"

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def fund(self, provider_ref: str, idempotency_key: str, chain_id: int, tx_hash: str) -> FundingResult:
        self.asked.append("fund")
        return FundingResult(self.provider_id, provider_ref, funded=False, detail="HTTP 409")

    async def cancel(self, provider_ref: str, idempotency_key: str) -> FundingResult:
        self.asked.append("cancel")
        return FundingResult(self.provider_id, provider_ref, funded=False, detail="HTTP 409")


async def test_a_funding_instruction_the_lender_refuses_is_never_recorded_as_funded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The loan is open on-chain and the lender answers its funding instruction with a 409 (its offer no longer
    reserved): the accept was recorded as funded, and the borrower owed a loan that was never paid out. It is now
    left recorded with the refusal, logged as an error, and not sent again."""
    store, lender, clock = InMemoryAcceptStore(), RefusingLender(), Clock()
    quote = _quote()
    store.tables.quotes[quote.id] = quote
    store.tables.requests["r1"] = "accepted"
    store.tables.records["q1"] = _left_by_a_dead_process(
        AcceptStep.RECORDED, tx_hash="0x" + "ab" * 32, loan_id="loan-1", lender_state="reserved"
    )
    service = _service(store, cast(FlakyLender, lender), clock)
    with caplog.at_level("ERROR", logger="aggregator.accepting"):
        assert await service.resume_unfinished() == 1
    record = _record(store)
    assert (record.step, record.lender_state) == (AcceptStep.RECORDED, FUND_REFUSED)
    assert "refused to fund the loan: HTTP 409" in (record.error or "")
    assert any("loan-1" in r.getMessage() and "refused to fund" in r.getMessage() for r in caplog.records)
    clock.now += LEASE * 2
    assert await service.resume_unfinished() == 0, "done: the same instruction would get the same answer"
    assert lender.asked == ["fund"]


async def test_a_cancellation_the_lender_refuses_is_not_recorded_as_cancelled() -> None:
    store, lender, clock = InMemoryAcceptStore(), RefusingLender(), Clock()
    _interrupted_at_reserved(store)
    assert await _service(store, cast(FlakyLender, lender), clock).resume_unfinished() == 1
    assert (_record(store).step, _record(store).lender_state) == (AcceptStep.CANCELLED, CANCEL_REFUSED)
    assert lender.asked == ["cancel"]


class HoldingLender:
    """A lender that holds what it reserved until it is cancelled, or declines to reserve."""

    provider_id = "sim-bank"

    def __init__(self, declines: bool = False) -> None:
        self.declines = declines
        self.held: set[str] = set()
        self.calls: list[str] = []

    async def reserve(self, offer: object, idempotency_key: str) -> FundingResult:
        self.calls.append("reserve")
        if self.declines:
            return FundingResult(self.provider_id, "ref-1", funded=False, detail="declined")
        self.held.add("ref-1")
        return FundingResult(self.provider_id, "ref-1", funded=True, detail="reserved")

    async def cancel(self, provider_ref: str, idempotency_key: str) -> FundingResult:
        self.calls.append("cancel")
        self.held.discard(provider_ref)
        return FundingResult(self.provider_id, provider_ref, funded=True, detail="cancelled")


class BlinkingRepository(InMemoryAcceptRepository):
    """Its first write of the step ``submitted`` fails, as a database connection lost would."""

    blinked = False

    def save(self, record: AcceptRecord) -> bool:
        if record.step is AcceptStep.SUBMITTED and not BlinkingRepository.blinked:
            BlinkingRepository.blinked = True
            raise RuntimeError("database connection lost")
        return super().save(record)


class BlinkingStore(InMemoryAcceptStore):
    def unit_of_work(self) -> AbstractContextManager[InMemoryAcceptUnitOfWork]:
        uow = InMemoryAcceptUnitOfWork(self.tables)
        uow.accepts = BlinkingRepository(self.tables)
        return rolled_back_on_exit(uow)


def _simulated(store: InMemoryAcceptStore, owner: str) -> AcceptRecord:
    """An accept locked and simulated by ``owner``, about to ask the lender to reserve."""
    quote = replace(_quote(), offer=_quote().offer | {"rateBps": 900, "originationFee": 0})
    store.tables.requests["r1"] = "quoted"
    store.tables.quotes[quote.id] = quote
    record = AcceptRecord(
        "q1", "r1", "b1", "traditional", "ethereum-local", 1, AcceptStep.SIMULATED, owner, START + LEASE, START
    )
    with store.unit_of_work() as uow:
        uow.accepts.lock(quote, record)
        uow.commit()
    return record


async def test_a_reservation_made_before_a_failed_write_is_cancelled_with_the_lender() -> None:
    """The lender reserved, then the write of 'submitted' failed: the record still said 'simulated', whose
    cancellation does not ask the lender, so the lender held the offer for ever. The step is now persisted as
    reserved before the lender is asked."""
    BlinkingRepository.blinked = False
    store, lender, clock = BlinkingStore(), HoldingLender(), Clock()
    service = _service(store, cast(FlakyLender, lender), clock)
    record = _simulated(store, service.owner)
    with pytest.raises(RuntimeError, match="database connection lost"):
        await service._drive_new(store.tables.quotes["q1"], record, cast(Call, None))
    assert lender.calls == ["reserve", "cancel"]
    assert lender.held == set()
    assert (_record(store).step, store.tables.quotes["q1"].status) == (AcceptStep.CANCELLED, "offered")


async def test_a_declined_reservation_is_not_cancelled_with_the_lender() -> None:
    store, lender, clock = InMemoryAcceptStore(), HoldingLender(declines=True), Clock()
    service = _service(store, cast(FlakyLender, lender), clock)
    record = _simulated(store, service.owner)
    with pytest.raises(ProviderRefused, match="declined to reserve"):
        await service._drive_new(store.tables.quotes["q1"], record, cast(Call, None))
    assert lender.calls == ["reserve"], "it holds nothing: no cancellation to refuse"
    assert (_record(store).step, _record(store).lender_state) == (AcceptStep.CANCELLED, RESERVATION_DECLINED)


class StuckTransactions:
    """A chain whose open-loan transaction was sent and is never mined (its RPC down, fees over the cap)."""

    def __init__(self) -> None:
        self.store = self
        self.waits: list[float | None] = []

    async def get_intent(self, key: str) -> object:
        return object()  # the intent exists: it was sent

    async def wait(self, key: str, within: float | None = None) -> object:
        self.waits.append(within)
        await asyncio.sleep(within if within is not None else 3_600)
        raise ConfirmationTimeout(key, within or 0)


async def test_one_accept_never_mined_does_not_hold_the_recovery_of_the_others() -> None:
    """Recovery drove accepts one after another and waited for an intent with no deadline: one transaction never
    mined held every other unfinished accept for ever (here a lender's cancellation owed). It now waits as long as
    the request path does, leaves that accept for a later pass, and goes on."""
    store, lender, clock = InMemoryAcceptStore(), FlakyLender(outages=0), Clock()
    stuck = StuckTransactions()
    pool = replace(_quote(), id="q-pool", request_id="r-pool", kind="pool", chain_name="polygon-local")
    traditional = _quote()
    store.tables.quotes.update({pool.id: pool, traditional.id: traditional})
    store.tables.requests.update({"r-pool": "accepting", "r1": "quoted"})
    dead = START - timedelta(seconds=1)
    store.tables.records["q-pool"] = AcceptRecord(
        "q-pool", "r-pool", "b1", "pool", "polygon-local", 1, AcceptStep.SUBMITTED, "dead", dead, dead
    )
    store.tables.records["q1"] = _left_by_a_dead_process(AcceptStep.CANCELLED, lender_state=CANCEL_FAILED)
    chains = cast(dict[str, ChainRuntime], {"polygon-local": SimpleNamespace(transactions=stuck)})
    service = _service(store, lender, clock, chains, relay_timeout=0.2)
    assert await asyncio.wait_for(service.resume_unfinished(), timeout=10) == 2
    assert stuck.waits == [0.2]
    assert lender.cancels == [("ref-1", "q1:1")], "the cancellation owed was asked"
    assert store.tables.records["q-pool"].step is AcceptStep.SUBMITTED, "left for a later pass"


class LenderReportingFailureMeanwhile:
    """A lender whose ``offer.funding_failed`` is recorded (``aggregator.offer_events``' compare-and-set) while its
    answer to the funding instruction is on its way, and which then answers it ``funded``."""

    provider_id = "sim-bank"

    def __init__(self, store: InMemoryAcceptStore) -> None:
        self.store, self.asked = store, 0

    async def fund(self, provider_ref: str, idempotency_key: str, chain_id: int, tx_hash: str) -> FundingResult:
        self.asked += 1
        current = self.store.tables.records["q1"]
        error = f"sim-bank {REPORTED_FUNDING_FAILURE} (evt-1): the disbursement account was frozen"
        self.store.tables.records["q1"] = replace(current, lender_state=FUND_REFUSED, error=error)
        return FundingResult(self.provider_id, provider_ref, funded=True, detail="funded")


async def test_the_lenders_report_of_a_failed_funding_stands_against_its_later_answer_and_fails_the_accept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The lender's offer.funding_failed is recorded while recovery's funding instruction is in flight, and the lender
    then answers that instruction funded: the saga wrote 'funded' over the report (the borrower told nothing, the
    loan counted funded). The first settlement now stands, the contradiction is logged for an operator, nothing is
    sent again, and the borrower's accept answers the failure, naming the loan."""
    store, clock = InMemoryAcceptStore(), Clock()
    lender = LenderReportingFailureMeanwhile(store)
    store.tables.quotes["q1"] = replace(_quote(), status="accepted")
    store.tables.requests["r1"] = "accepted"
    store.tables.records["q1"] = _left_by_a_dead_process(
        AcceptStep.RECORDED, tx_hash="0x" + "ab" * 32, loan_id="loan-1", lender_state="reserved"
    )
    service = _service(store, cast(FlakyLender, lender), clock)
    with caplog.at_level("ERROR", logger="aggregator.accepting"):
        assert await service.resume_unfinished() == 1
    record = _record(store)
    assert (record.step, record.lender_state) == (AcceptStep.RECORDED, FUND_REFUSED)
    assert "the disbursement account was frozen" in (record.error or "")
    assert any("after reporting that its funding failed" in r.getMessage() for r in caplog.records)
    clock.now += LEASE * 2
    assert await service.resume_unfinished() == 0
    assert lender.asked == 1

    with pytest.raises(FundingFailed) as failed:
        await service.accept(BORROWER, "q1", "0x" + "00" * 65)
    assert (failed.value.quote_id, failed.value.loan_id) == ("q1", "loan-1")
    assert failed.value.reason == "sim-bank reported that funding the loan failed"
    assert "frozen" not in str(failed.value), "the lender's own words are for the operator"


async def test_a_quote_on_a_chain_no_longer_served_is_refused_not_a_500() -> None:
    """A quote made before the chains file dropped its chain: the accept looked the chain up by name (KeyError, a
    bare 500); it is a quote that cannot be accepted (409), and nothing is locked."""
    store, clock = InMemoryAcceptStore(), Clock()
    signed_offer = offer_fields("0x" + "12" * 20)  # every field the acceptance's typed data names
    quote = replace(_quote(), offer=_quote().offer | signed_offer)
    store.tables.requests["r1"] = "quoted"
    store.tables.quotes[quote.id] = quote
    with pytest.raises(QuoteNotAcceptable, match="a chain this platform no longer serves"):
        await _service(store, FlakyLender(outages=0), clock).accept(BORROWER, "q1", "0x" + "00" * 65)
    assert store.tables.quotes["q1"].status == "offered"
    assert store.tables.records == {}


async def test_an_accept_in_flight_on_a_chain_no_longer_served_is_left_for_the_operator() -> None:
    """The chains file dropped the chain while the accept's transaction was in flight there: recovery looked the
    chain up by name (KeyError, every pass). It is left as it is (only that chain can settle it) and reported."""
    store, clock = InMemoryAcceptStore(), Clock()
    quote = replace(_quote(), chain_name="dropped-local")
    store.tables.requests["r1"] = "accepting"
    store.tables.quotes[quote.id] = quote
    store.tables.records["q1"] = replace(_left_by_a_dead_process(AcceptStep.SUBMITTED), chain_name="dropped-local")
    service = _service(store, FlakyLender(outages=0), clock)
    assert await service.resume_unfinished() == 0
    assert _record(store).step is AcceptStep.SUBMITTED
    assert _record(store).owner == "dead-process", "not claimed"
    assert await service.report_stranded() == ["dropped-local"]


class DownFundingDesk:
    """A lender whose funding desk answers 503 to every funding instruction."""

    provider_id = "sim-bank"

    def __init__(self) -> None:
        self.asked = 0

    async def fund(self, provider_ref: str, idempotency_key: str, chain_id: int, tx_hash: str) -> FundingResult:
        self.asked += 1
        raise ProviderServerError("sim-bank answered 503", 503)


async def test_a_funding_instruction_undelivered_past_the_funding_window_is_settled_refused() -> None:
    """Within the funding window an undelivered instruction leaves the accept recorded (``funding_pending``) and is
    sent again; once the window has passed since the loan was recorded, the next failure settles it ``fund-refused``
    (``UNDELIVERED_FUNDING``): the loan is unfunded, and nothing is sent again."""
    store, lender, clock, loans = InMemoryAcceptStore(), DownFundingDesk(), Clock(), InMemoryLoanStore()
    quote = _quote()
    store.tables.quotes[quote.id] = quote
    store.tables.requests["r1"] = "accepted"
    store.tables.records["q1"] = _left_by_a_dead_process(
        AcceptStep.RECORDED, tx_hash="0x" + "ab" * 32, loan_id="loan-1", lender_state="reserved"
    )
    loans.loans["loan-1"] = LoanRecord(
        "loan-1", "ethereum-local", 31337, quote.contract, "active", "USDC", 10**9, quote.offer_digest, START
    )
    service = _service(store, cast(FlakyLender, lender), clock, loans=loans)
    assert await service.resume_unfinished() == 1
    record = _record(store)
    assert (record.step, record.lender_state) == (AcceptStep.RECORDED, "reserved")
    assert funding_pending(quote.kind, record.step, record.lender_state)
    clock.now = START + FUNDING_WINDOW + LEASE  # the window has passed since the loan was recorded
    assert await service.resume_unfinished() == 1
    record = _record(store)
    assert (record.step, record.lender_state) == (AcceptStep.RECORDED, FUND_REFUSED)
    assert UNDELIVERED_FUNDING in (record.error or "")
    assert not funding_pending(quote.kind, record.step, record.lender_state)
    clock.now += LEASE * 2
    assert await service.resume_unfinished() == 0, "unfunded now: the instruction is not sent again"
    assert lender.asked == 2
