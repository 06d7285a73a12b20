"""The accept saga's records: one per quote, its step persisted before the next step starts, so a process that
dies at any point leaves enough behind for another (or itself, restarted) to drive the accept to its end.

    verified → screened → simulated → [reserved] → submitted → mined → recorded → [funded]
           ↘ cancelled (the quote is back to ``offered``: nothing was or can any longer be mined)
                                             ↘ failed (intent failed, yet the offer nonce is used on-chain)

The accept persists fewer of them than it passes (``aggregator.accepting``): the lock is written at ``simulated``
(a pool quote's at ``submitted``) with the screening's records, a traditional lender's reservation at ``submitted``
(``lender_state`` reserved), and the loan at ``recorded`` straight from ``submitted``; a record left at any of the
others by an earlier version is driven on as before.

``reserved`` and ``funded`` are a traditional lender's two phases (the Provider Quote Protocol's reserve and fund);
a pool loan skips them. ``cancelled`` is reached only before ``submitted``, or after it once the transaction can no
longer be mined (its intent failed and the offer nonce is unused on-chain). Pure records and a repository
interface with an in-memory fake; the SQL side is ``store.accepts``."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from aggregator.loans import LoanRecord
from aggregator.owed import Exposure
from aggregator.projection import ACTIVE
from aggregator.snapshots import SnapshotUnitOfWork, rolled_back_on_exit
from compliance.decisions import DecisionRecord


class AcceptStep(StrEnum):
    VERIFIED = "verified"  # acceptance signature checked, quote locked, sibling quotes superseded (earlier versions)
    SCREENED = "screened"  # borrower and collateral source re-screened, decisions recorded (earlier versions)
    SIMULATED = "simulated"  # screened, openLoan simulated (it would succeed now), quote locked: one transaction
    RESERVED = "reserved"  # the traditional lender holds the offer (not funded)
    SUBMITTED = "submitted"  # the openLoan intent is (about to be) persisted and sent; it may be mined (a pool
    # accept is locked at this step: nothing but the submission follows the simulation)
    MINED = "mined"  # openLoan confirmed; LoanOpened read from the receipt (earlier versions: now recorded at once)
    RECORDED = "recorded"  # the loan is in our records, quote and credit request accepted
    FUNDED = "funded"  # the traditional lender was told to fund the loan opened on-chain
    CANCELLED = "cancelled"  # the quote went back to offered (and a lender's reservation was cancelled)
    FAILED = "failed"  # our intent failed but the offer nonce is spent: opened by another transaction (the ledger
    # links that loan by offerDigest); the quote stays 'accepting' and is never offered again


#: steps after which the transaction may be on its way: the quote must not go back to ``offered`` blindly
IN_FLIGHT = frozenset({AcceptStep.SUBMITTED, AcceptStep.MINED})
FINAL = frozenset({AcceptStep.FUNDED, AcceptStep.CANCELLED, AcceptStep.FAILED})
POOL, TRADITIONAL = "pool", "traditional"
#: the status of a quote whose lender withdrew its offer (``offer.withdrawn``: ``aggregator.offer_events``): never
#: accepted again, nor offered again when an accept of it that was under way is cancelled
WITHDRAWN = "withdrawn"
#: ``lender_state`` of a cancelled accept whose reservation the lender has not yet cancelled (an outage): recovery
#: retries the cancellation until the lender takes it, and the quote is not accepted again meanwhile
CANCEL_FAILED = "cancel-failed"
#: ``lender_state`` of a cancellation the lender refused for good (a 4xx): logged, not retried
CANCEL_REFUSED = "cancel-refused"
#: ``lender_state`` while the lender is asked to reserve (persisted first) or did not answer: it may hold the offer
RESERVATION_UNKNOWN = "unknown"
#: ``lender_state`` of a reservation the lender declined: it holds nothing, so the cancellation does not ask it
RESERVATION_DECLINED = "declined"
#: ``lender_state`` of a loan opened on-chain whose lender refused the funding instruction (a 404, 409 or 410, or
#: an answer other than funded): logged as an error for an operator, not retried, and never recorded as funded
FUND_REFUSED = "fund-refused"
#: ``lender_state`` of a loan whose funding is settled, one way or the other: the lender's first answer stands (its
#: answer to ``/fund`` or its ``offer.funding_failed``, whichever is recorded first: ``aggregator.offer_events``)
FUNDING_SETTLED = ("funded", FUND_REFUSED)
#: how a ``fund-refused`` accept's error says the lender itself reported the funding failed (``offer.funding_failed``)
REPORTED_FUNDING_FAILURE = "reported that funding the loan failed: offer.funding_failed"
#: how a ``fund-refused`` accept's error says the funding instruction was never delivered within the funding window
#: (``aggregator.accepting``: recovery stops sending it, and the loan is settled as one its lender refused)
UNDELIVERED_FUNDING = "funding instruction not delivered within the funding window"


def is_done(step: AcceptStep, kind: str, lender_state: str | None = None) -> bool:
    """Whether nothing remains to be driven: a pool loan is done once recorded, a traditional one once funded (or once
    its lender refused to fund it, which an operator must take up); a cancelled accept once its lender's reservation
    is cancelled too."""
    if step is AcceptStep.CANCELLED and lender_state == CANCEL_FAILED:
        return False
    if step is AcceptStep.RECORDED and lender_state == FUND_REFUSED:
        return True
    return step in FINAL or (step is AcceptStep.RECORDED and kind == POOL)


def funding_failure(provider_id: str, error: str | None) -> str:
    """What the borrower is told of a ``fund-refused`` accept: that its lender reported the funding failed, refused
    to fund the loan, or never took the funding instruction within the funding window (the lender's own words stay in
    the record and the log, for an operator)."""
    if error is not None and REPORTED_FUNDING_FAILURE in error:
        return f"{provider_id} reported that funding the loan failed"
    if error is not None and error.startswith(UNDELIVERED_FUNDING):
        return f"{provider_id} did not take the instruction to fund the loan within the funding window"
    return f"{provider_id} refused to fund the loan"


def funding_pending(kind: str, step: AcceptStep | str | None, lender_state: str | None) -> bool:
    """Whether a traditional lender's loan is open on-chain with its funding not yet settled: the accept is
    ``recorded`` and the lender has neither answered the funding instruction (``funded``, ``fund-refused``) nor
    reported the funding failed — the instruction is on its way, or was not delivered (a lender outage) and recovery
    sends it again. The borrower may not have been paid out, so servicing protects it as an unfunded loan."""
    return kind == TRADITIONAL and step == AcceptStep.RECORDED and lender_state not in FUNDING_SETTLED


@dataclass(frozen=True, slots=True)
class QuoteView:
    """What the accept needs of a stored quote (no ORM row leaves ``store``)."""

    id: str
    request_id: str
    borrower_id: str
    provider_id: str
    kind: str
    chain_name: str
    chain_id: int
    contract: str
    offer: dict[str, Any]
    offer_digest: str
    offer_signature: str
    attestation: dict[str, Any]
    attestation_signature: str
    disclosure: dict[str, Any]
    status: str
    expires_at: datetime
    risk_max_amount: str  # what risk approved for the quote's credit request, in asset units

    @property
    def principal(self) -> int:
        return int(self.offer["principal"])

    @property
    def asset(self) -> str:
        return str(self.disclosure["asset"])

    @property
    def nonce(self) -> int:
        return int(self.offer["nonce"])


@dataclass(frozen=True, slots=True)
class AcceptRecord:
    quote_id: str
    request_id: str
    borrower_id: str
    kind: str
    chain_name: str
    attempt: int
    step: AcceptStep
    owner: str
    lease_until: datetime
    updated_at: datetime
    error: str | None = None
    tx_hash: str | None = None
    loan_id: str | None = None
    lender_state: str | None = None  # reserved | funded | cancelled (traditional lenders only)

    @property
    def intent_key(self) -> str:
        """The relay intent of this attempt (a cancelled accept retried is a new attempt, a new intent)."""
        return f"open-loan:{self.quote_id}:{self.attempt}"


@dataclass(frozen=True, slots=True)
class LoanFacts:
    """The loan as the ``openLoan`` receipt shows it: its ledger id (derived from the chain, the CreditAggregator and
    the offer digest, so the indexer names it the same) and the receipt's decoded events, which the ledger applies
    (``aggregator.ledger.record_events``; opaque here)."""

    id: str
    quote_id: str
    borrower_id: str
    asset: str
    principal: int
    tx_hash: str
    events: tuple[Any, ...] = ()
    ledger_chain: Any = None
    offer_digest: str = ""  # the quote's, as stored
    #: the quote as the ledger links its loan to it (``aggregator.projection.QuoteLink``) and its offer: known to the
    #: accept, so the ledger does not read them by the offer digest again
    quote_link: Any = None
    offer: Any = None


@dataclass(frozen=True, slots=True)
class Screening:
    """The acceptance's re-screening, every record allowed: written with the lock (``AcceptRepository``)."""

    records: Sequence[DecisionRecord]
    borrower_id: str
    list_version: str
    at: datetime


class LockRefused(Exception):
    """The quote could not be locked: ``reason`` is ``status`` (the quote is not offered), ``superseded`` (another
    quote of its credit request is accepted or being accepted) or ``in-progress`` (an accept of it is running)."""

    def __init__(self, reason: str, status: str) -> None:
        super().__init__(f"{reason}: {status}")
        self.reason, self.status = reason, status


class AcceptRepository(Protocol):
    """The accept's storage, inside one unit of work (the unit of work commits; this never does)."""

    def quote(self, quote_id: str) -> QuoteView | None: ...

    def record(self, quote_id: str) -> AcceptRecord | None: ...

    def quote_and_record(self, quote_id: str) -> tuple[QuoteView, AcceptRecord | None] | None:
        """``quote`` and ``record`` in one read (None when the quote is unknown)."""
        ...

    def lock(self, quote: QuoteView, record: AcceptRecord) -> None:
        """Compare-and-set the quote ``offered`` → ``accepting`` and its request ``quoted`` → ``accepting``,
        supersede the request's other offered quotes and write ``record``; LockRefused if any CAS fails."""
        ...

    def withdraw(self, quote_id: str) -> None:
        """The quote ``offered`` → ``withdrawn``: its lender left before it could be accepted (``lock`` refused it
        as withdrawn, and its unit of work was rolled back)."""
        ...

    def exposure(self, borrower_id: str, excluding_quote: str) -> Exposure:
        """Open principal of the borrower: outstanding principal of its active and defaulted loans, plus accepts
        in flight (locks the borrower's row on PostgreSQL, so exposure checks of one borrower run one at a
        time)."""
        ...

    def save(self, record: AcceptRecord) -> bool:
        """Write ``record`` if its owner still holds the accept (one fenced statement); False, writing nothing, once
        another process took it over."""
        ...

    def settle_funding(self, record: AcceptRecord) -> bool:
        """``save`` the lender's answer to the funding instruction, unless the funding is settled already (its
        ``lender_state`` one of ``FUNDING_SETTLED``: the lender's ``offer.funding_failed`` came first); False,
        writing nothing, then or once another process took the accept over."""
        ...

    def record_screening(self, screening: Screening) -> None:
        """Store the screening's decision records as ``ScreeningLog.record`` does, in this unit of work."""
        ...

    def renew(self, quote_ids: Sequence[str], owner: str, lease_until: datetime) -> set[str]:
        """Extend the lease of those of ``quote_ids`` that ``owner`` still holds (one statement for all); the ids
        renewed (an id missing was taken over by another process)."""
        ...

    def release(self, record: AcceptRecord, now: datetime) -> None:
        """The quote back to ``offered`` (to ``withdrawn`` when its lender withdrew the offer meanwhile: an
        ``offer.withdrawn`` webhook is stored for it), its request to ``quoted``, the superseded quotes that are still
        unexpired back to ``offered``; ``record`` (cancelled) saved."""
        ...

    def record_loan(self, loan: LoanFacts, record: AcceptRecord) -> str | None:
        """Save ``record`` (fenced, as ``save``) with the loan's id, write the loan once (a second call returns the
        first loan's id), quote and request ``accepted``; None, writing nothing, once another process took the
        accept over."""
        ...

    def claimable(self, now: datetime, limit: int, chains: Collection[str]) -> list[AcceptRecord]:
        """Unfinished accepts whose lease has run out (``is_done`` false: a cancellation still owed to a lender
        included), but those whose transaction is in flight on a chain not in ``chains``."""
        ...

    def in_flight_chains(self) -> set[str]:
        """The chains of every accept whose transaction is in flight, leased or not."""
        ...

    def claim(self, record: AcceptRecord, owner: str, lease_until: datetime, now: datetime) -> AcceptRecord | None:
        """Take ``record`` over if its owner is still the one read and its lease has run out (compare-and-set);
        None if another process won."""
        ...

    def loan_of_quote(self, quote_id: str) -> str | None: ...

    def loan(self, loan_id: str) -> LoanRecord | None:
        """The loan as the ledger records it, in this unit of work (what the accept answers with)."""
        ...


class AcceptUnitOfWork(Protocol):
    @property
    def accepts(self) -> AcceptRepository: ...

    def commit(self) -> None: ...


class ScreeningLog(Protocol):
    """Where the acceptance's re-screening is recorded."""

    def record(
        self, records: Sequence[DecisionRecord], borrower_id: str, list_version: str, now: datetime
    ) -> list[tuple[str, str]]:
        """Store the decision records (a name hit opens its sanctions review, as at the credit request), in a
        transaction of its own; the reasons a refused borrower is told (empty when every record allowed)."""
        ...


class AcceptStore(Protocol):
    """Opens units of work (one database transaction each; leaving without ``commit`` rolls back)."""

    def unit_of_work(self) -> AbstractContextManager[AcceptUnitOfWork]: ...


def advance(record: AcceptRecord, step: AcceptStep, now: datetime, **changes: Any) -> AcceptRecord:
    return replace(record, step=step, updated_at=now, **changes)


# ---------------------------------------------------------------------------------------------- in-memory fake


@dataclass
class _Tables:
    quotes: dict[str, QuoteView] = field(default_factory=dict)
    requests: dict[str, str] = field(default_factory=dict)  # request id -> status
    records: dict[str, AcceptRecord] = field(default_factory=dict)
    loans: dict[str, LoanFacts] = field(default_factory=dict)  # loan id -> loan
    screenings: list[DecisionRecord] = field(default_factory=list)
    withdrawals: set[tuple[str, str]] = field(default_factory=set)  # (provider id, offer ref) its lender withdrew


class InMemoryAcceptRepository:
    def __init__(self, tables: _Tables) -> None:
        self.tables = tables

    def quote(self, quote_id: str) -> QuoteView | None:
        return self.tables.quotes.get(quote_id)

    def record(self, quote_id: str) -> AcceptRecord | None:
        return self.tables.records.get(quote_id)

    def quote_and_record(self, quote_id: str) -> tuple[QuoteView, AcceptRecord | None] | None:
        quote = self.quote(quote_id)
        return None if quote is None else (quote, self.record(quote_id))

    def _set_quote(self, quote_id: str, status: str) -> None:
        self.tables.quotes[quote_id] = replace(self.tables.quotes[quote_id], status=status)

    def lock(self, quote: QuoteView, record: AcceptRecord) -> None:
        current = self.tables.quotes[quote.id]
        if current.status != "offered":
            reason = "superseded" if current.status == "superseded" else "status"
            raise LockRefused(reason, current.status)
        if self.tables.requests.get(quote.request_id) != "quoted":
            raise LockRefused("superseded", self.tables.requests.get(quote.request_id, "unknown"))
        self._set_quote(quote.id, "accepting")
        self.tables.requests[quote.request_id] = "accepting"
        for other in list(self.tables.quotes.values()):
            if other.request_id == quote.request_id and other.id != quote.id and other.status == "offered":
                self._set_quote(other.id, "superseded")
        self.tables.records[quote.id] = record

    def withdraw(self, quote_id: str) -> None:
        if self.tables.quotes[quote_id].status == "offered":
            self._set_quote(quote_id, WITHDRAWN)

    def exposure(self, borrower_id: str, excluding_quote: str) -> Exposure:
        totals: dict[str, int] = {}
        for loan in self.tables.loans.values():
            if loan.borrower_id == borrower_id:
                totals[loan.asset] = totals.get(loan.asset, 0) + loan.principal
        for q in self.tables.quotes.values():
            if q.borrower_id == borrower_id and q.status == "accepting" and q.id != excluding_quote:
                totals[q.asset] = totals.get(q.asset, 0) + q.principal
        return Exposure(totals)

    def save(self, record: AcceptRecord) -> bool:
        current = self.tables.records.get(record.quote_id)
        if current is not None and current.owner != record.owner:
            return False
        self.tables.records[record.quote_id] = record
        return True

    def settle_funding(self, record: AcceptRecord) -> bool:
        current = self.tables.records.get(record.quote_id)
        if current is not None and current.lender_state in FUNDING_SETTLED:
            return False
        return self.save(record)

    def record_screening(self, screening: Screening) -> None:
        self.tables.screenings.extend(screening.records)

    def renew(self, quote_ids: Sequence[str], owner: str, lease_until: datetime) -> set[str]:
        renewed: set[str] = set()
        for quote_id in quote_ids:
            current = self.tables.records.get(quote_id)
            if current is not None and current.owner == owner:
                self.tables.records[quote_id] = replace(current, lease_until=lease_until)
                renewed.add(quote_id)
        return renewed

    def release(self, record: AcceptRecord, now: datetime) -> None:
        quote = self.tables.quotes[record.quote_id]
        withdrawn = (quote.provider_id, str(quote.offer.get("providerRef"))) in self.tables.withdrawals
        self._set_quote(quote.id, WITHDRAWN if withdrawn else "offered")
        self.tables.requests[quote.request_id] = "quoted"
        for other in list(self.tables.quotes.values()):
            if other.request_id == quote.request_id and other.status == "superseded" and other.expires_at > now:
                self._set_quote(other.id, "offered")
        self.tables.records[record.quote_id] = record

    def record_loan(self, loan: LoanFacts, record: AcceptRecord) -> str | None:
        current = self.tables.records.get(record.quote_id)
        if current is not None and current.owner != record.owner:
            return None
        existing = self.loan_of_quote(loan.quote_id)
        if existing is None:
            self.tables.loans[loan.id] = loan
            existing = loan.id
        quote = self.tables.quotes[loan.quote_id]
        self._set_quote(quote.id, "accepted")
        self.tables.requests[quote.request_id] = "accepted"
        self.tables.records[record.quote_id] = replace(record, loan_id=existing)
        return existing

    def claimable(self, now: datetime, limit: int, chains: Collection[str]) -> list[AcceptRecord]:
        found = [
            r
            for r in self.tables.records.values()
            if not is_done(r.step, r.kind, r.lender_state)
            and r.lease_until <= now
            and (r.step not in IN_FLIGHT or r.chain_name in chains)
        ]
        return sorted(found, key=lambda r: r.updated_at)[:limit]

    def in_flight_chains(self) -> set[str]:
        return {r.chain_name for r in self.tables.records.values() if r.step in IN_FLIGHT}

    def claim(self, record: AcceptRecord, owner: str, lease_until: datetime, now: datetime) -> AcceptRecord | None:
        current = self.tables.records.get(record.quote_id)
        if current is None or current.owner != record.owner or current.lease_until > now:
            return None
        claimed = replace(current, owner=owner, lease_until=lease_until, updated_at=now)
        self.tables.records[record.quote_id] = claimed
        return claimed

    def loan_of_quote(self, quote_id: str) -> str | None:
        return next((loan.id for loan in self.tables.loans.values() if loan.quote_id == quote_id), None)

    def loan(self, loan_id: str) -> LoanRecord | None:
        facts = self.tables.loans.get(loan_id)
        if facts is None:
            return None
        quote = self.tables.quotes[facts.quote_id]
        record = self.tables.records[facts.quote_id]
        return LoanRecord(
            id=facts.id,
            chain_name=quote.chain_name,
            chain_id=quote.chain_id,
            contract=quote.contract,
            status=ACTIVE,
            asset=facts.asset,
            principal=facts.principal,
            offer_digest=quote.offer_digest,
            created_at=record.updated_at,
            quote_id=quote.id,
            borrower_id=facts.borrower_id,
            provider_id=quote.provider_id,
            tx_hash=facts.tx_hash,
        )


class InMemoryAcceptUnitOfWork(SnapshotUnitOfWork):
    def __init__(self, tables: _Tables) -> None:
        super().__init__(tables)
        self.accepts = InMemoryAcceptRepository(tables)


class InMemoryAcceptStore:
    """The fake for unit tests: one process, transactions as snapshots."""

    def __init__(self) -> None:
        self.tables = _Tables()

    def unit_of_work(self) -> AbstractContextManager[InMemoryAcceptUnitOfWork]:
        return rolled_back_on_exit(InMemoryAcceptUnitOfWork(self.tables))


class InMemoryScreeningLog:
    """The fake for unit tests: keeps the records; a refused one is told by its reasons' codes."""

    def __init__(self) -> None:
        self.records: list[DecisionRecord] = []

    def record(
        self, records: Sequence[DecisionRecord], borrower_id: str, list_version: str, now: datetime
    ) -> list[tuple[str, str]]:
        self.records.extend(records)
        return [(reason.code, reason.code) for record in records if not record.allowed for reason in record.reasons]
