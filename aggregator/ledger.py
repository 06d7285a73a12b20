"""The loan ledger: every loan's record as a projection of the chain facts of our contracts.

One entry point writes both, in the caller's transaction: ``record_events(ledger, chain, events)`` records each
event as a chain fact (unique on chain id, block hash, tx hash and log index) and, only when the fact is new,
applies it to the loan it names. It is idempotent: the accept applies what a receipt shows at once
(``source=SOURCE_RECEIPT``, ``via_accept=True``), the indexer applies the same confirmed events later and nothing
changes twice. ``record_batch`` is the indexer's: it first deletes the facts of the delivered block range that were
recorded under another block hash (a reorg removed their blocks; also facts recorded early from a receipt), rebuilds
the loans they touched from their remaining facts, then applies the range's events. Both run in the caller's unit
of work (the indexer's commits with its checkpoint), through a ``LedgerRepository``: the SQL one is
``store.ledger.SqlLedger``, ``aggregator.ledger_memory.InMemoryLedger`` the fake for unit tests. How each fact moves
a loan is pure (``aggregator.projection``).

A ``LoanOpened`` creates the record linked to our quote by ``offerDigest``; without an accept of ours (the quote not
locked by an accept, or no quote at all) it is flagged ``opened_outside_accept``. Each new fact that changes a loan
also writes its loan event (``aggregator.loan_events``) to the outbox in the same transaction; a fact applied again
writes none, and a reorg's rebuild writes none (its facts' events were written). An event of a fact the reorg
deleted that no remaining fact makes again is cancelled, or retracted with ``loan.event_retracted`` when a recipient
had it (``aggregator.retraction``).

Facts reach a loan out of chain order: a receipt's are applied at once, and the indexer later applies the confirmed
events it has not seen — among them events of earlier blocks no receipt recorded (the borrower's own repayment from
its wallet, a third party's liquidation, a ``markDefault`` whose receipt wait ran out), or a receipt is applied late
(the default job resuming its ``markDefault`` after a repayment's receipt). A new fact older (block, log index) than
a fact of its loan recorded before it is not applied on top: the loan is recomputed from all its facts in chain
order (``projection.caught_up``), and the fact's event is written when it is still true of the loan
(``loan_events.told_late``: not ``loan.defaulted`` of a loan closed since).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from aggregator.errors import AggregatorError
from aggregator.loan_events import LoanEvent, fact_event, told_late
from aggregator.projection import (
    ACTIVE,
    CANCELLED,
    DEFAULTED,
    LIQUIDATED,
    OURS,
    REPAID,
    STATUSES,
    WRITTEN_OFF,
    Entry,
    Fact,
    LedgerChain,
    LoanState,
    QuoteLink,
    Rebuilt,
    caught_up,
    chain_order,
    loan_id_for,
    moved,
    new_loan,
    opened,
    quote_here,
    rebuilt,
)
from aggregator.retraction import RemovedFact, removed_fact
from chain.deployment import DeploymentRecord
from chain.events import ChainEvent, EventBatch, EventDecoder, WatchedContract
from store.ledger import SOURCE_INDEXER, SOURCE_RECEIPT

__all__ = [
    "ACTIVE",
    "CANCELLED",
    "DEFAULTED",
    "LIQUIDATED",
    "OURS",
    "REPAID",
    "SOURCE_INDEXER",
    "SOURCE_RECEIPT",
    "STATUSES",
    "WRITTEN_OFF",
    "LedgerChain",
    "LedgerError",
    "LedgerRepository",
    "loan_id_for",
    "receipt_decoder",
    "record_batch",
    "record_events",
    "watched_contracts",
]


WATCHED_ARTIFACTS = (
    "CreditAggregator",
    "CollateralManager",
    "LendingPool",
    "CreditScoringOracle",
    "TimelockController",
)


def watched_contracts(record: DeploymentRecord) -> list[WatchedContract]:
    """Every contract of ours in a deployment record whose events are chain facts (pools registered later are
    added by the indexer as their ``PoolRegistered`` arrives)."""
    return [
        WatchedContract(key, deployed.address, deployed.artifact)
        for key, deployed in sorted(record.contracts.items())
        if deployed.artifact in WATCHED_ARTIFACTS
    ]


def receipt_decoder(record: DeploymentRecord, codec: Any) -> EventDecoder:
    """Decodes a receipt's logs of the contracts in ``record`` into ``ChainEvent``s for ``record_events``."""
    decoder = EventDecoder(codec)
    for contract in watched_contracts(record):
        decoder.add(contract)
    return decoder


class LedgerError(AggregatorError):
    """The chain facts contradict the ledger in a way a replay cannot fix (reported, never papered over)."""


class LedgerRepository(Protocol):
    """The chain facts, the loan records and their entries in one transaction (never commits); the loan events of
    new facts go to the outbox in that transaction too."""

    def add_facts(self, events: Sequence[ChainEvent], source: str) -> dict[tuple[str, str, int], int]:
        """Record the events not recorded yet; the ids of the new facts by (block hash, tx hash, log index)."""
        ...

    def stale_facts(
        self, chain_id: int, from_block: int, to_block: int, hashes: Mapping[int, str], mined: Mapping[str, str]
    ) -> list[int]:
        """Ids of facts in blocks ``from_block``..``to_block`` not under the delivered block hash (``hashes``), and of
        facts in any block of a transaction the range mined under another block hash (``mined``: tx hash → block
        hash): a transaction re-mined below its old block after a reorg, its old fact outside the range."""
        ...

    def facts(self, ids: Iterable[int]) -> list[Fact]: ...

    def delete_facts(self, ids: Iterable[int]) -> None:
        """Delete the facts and the loan entries made from them."""
        ...

    def loan_facts(self, chain_id: int, loan_ref: int, addresses: Iterable[str]) -> list[Fact]:
        """One on-chain loan's facts from the given contracts, in chain order."""
        ...

    def fact_places(self, chain_id: int, loan_ref: int, addresses: Iterable[str]) -> list[tuple[int, int, int]]:
        """Where one on-chain loan's facts from the given contracts are: (fact id, block number, log index) each,
        in no particular order (``loan_facts`` without the facts)."""
        ...

    def loan(self, loan_id: str) -> LoanState | None: ...

    def loan_by_onchain_id(self, chain_id: int, contract: str, loan_ref: int) -> LoanState | None: ...

    def loan_to_open(self, loan_id: str, chain_id: int, contract: str, loan_ref: int) -> LoanState | None:
        """The loan ``loan_id`` a ``LoanOpened`` names, else the one recorded under its on-chain id (a record made
        before ledger ids were derived from the offer digest): ``loan`` and ``loan_by_onchain_id`` in one read."""
        ...

    def quote_by_digest(self, offer_digest: str) -> QuoteLink | None: ...

    def borrower_by_wallet(self, wallet: str) -> str | None:
        """Our borrower whose registered wallet is ``wallet``, if any."""
        ...

    def save_loan(self, loan: LoanState) -> None:
        """Insert or update the record."""
        ...

    def add_entry(self, entry: Entry) -> None: ...

    def clear_entries(self, loan_id: str) -> None: ...

    def delete_loan(self, loan_id: str) -> None:
        """The record and its entries."""
        ...

    def liquidated_in(self, loan_id: str, tx_hash: str) -> bool:
        """Whether a liquidation of the loan is recorded from transaction ``tx_hash``."""
        ...

    def publish(self, loan: LoanState, event: LoanEvent) -> None:
        """Write the loan event to the outbox (once per loan, type and key)."""
        ...

    def retract_unbacked(self, chain: LedgerChain, removed: Sequence[RemovedFact]) -> None:
        """Retract the loan events of ``removed`` facts that no remaining fact of their loan makes again
        (``aggregator.retraction``)."""
        ...


# ---------------------------------------------------------------------------------------------- on a repository


def record_events(
    ledger: LedgerRepository,
    chain: LedgerChain,
    events: Iterable[ChainEvent],
    *,
    source: str = SOURCE_INDEXER,
    via_accept: bool = False,
    now: datetime | None = None,
) -> int:
    """Record ``events`` as chain facts and apply the new ones to the ledger, in chain order, in the repository's
    transaction (its caller's unit of work commits). Returns how many facts were new.

    Args:
        source: ``SOURCE_INDEXER`` for confirmed events, ``SOURCE_RECEIPT`` for what an accept read from its
            receipt before confirmation (deleted by the indexer if the block does not survive).
        via_accept: the accept saga records its own loan: never flagged as opened outside an accept (a record the
            indexer flagged first is unflagged).
        now: when a new record is created (the clock by default).
    """
    ordered = sorted(events, key=lambda e: (e.block_number, e.log_index))
    new = ledger.add_facts(ordered, source)
    recorded = _Recorded(ledger, chain, new.values())
    for event in ordered:
        if not chain.moves_loans(event.address):
            continue
        fact_id = new.get((event.block_hash, event.tx_hash, event.log_index))
        if fact_id is not None:
            fact = Fact.of_event(event, fact_id)
            _apply(ledger, chain, fact, recorded, via_accept=via_accept, now=now)
            recorded.applied(fact)
        elif via_accept and event.event == "LoanOpened":
            _claim_for_accept(ledger, chain, int(event.args["loanId"]))
    return len(new)


def record_batch(ledger: LedgerRepository, chain: LedgerChain, batch: EventBatch, now: datetime | None = None) -> int:
    """Delete the range's facts recorded under another block hash (a reorg removed their blocks, or a receipt's
    block did not survive), rebuild every loan they touched from the facts it has left, then record and apply the
    range's events; then retract the loan events of the deleted facts that nothing makes again.

    The reader's reorg notice (``reorg`` set, no events) spans only the dropped blocks above the node's confirmed
    head (``EventReader._roll_back``); the blocks below it are re-read as ranges whose stale facts go in the same
    transaction as the facts the new blocks hold. Deleted at the notice, a loan whose transactions were mined again
    on the new branch lost its record (its past-due notices and payment records with it) and every event it had sent
    was retracted and sent again under new ids; deleted with its re-read range, its opening is found again and its
    events stand."""
    mined = {event.tx_hash: event.block_hash for event in batch.events}
    stale = ledger.stale_facts(chain.chain_id, batch.from_block, batch.to_block, batch.block_hashes, mined)
    removed: list[RemovedFact] = []
    if stale:
        touched: set[str] = set()
        for fact in ledger.facts(stale):
            if fact.loan_ref is not None and chain.moves_loans(fact.address):
                loan = ledger.loan_by_onchain_id(chain.chain_id, chain.aggregator, fact.loan_ref)
                if loan is not None:
                    touched.add(loan.id)
                    gone = removed_fact(loan, fact)
                    if gone is not None:
                        removed.append(gone)
        ledger.delete_facts(stale)
        reopened = {
            Fact.of_event(event, 0).hex("offerDigest")
            for event in batch.events
            if event.event == "LoanOpened" and chain.moves_loans(event.address)
        }
        for loan_id in sorted(touched):
            loan = ledger.loan(loan_id)
            if loan is not None:
                _rebuild(ledger, chain, loan, reopened=loan.offer_digest in reopened)
    applied = record_events(ledger, chain, batch.events, now=now)
    if removed:  # their loan events, unless a remaining fact makes them again: cancelled, or retracted out loud
        ledger.retract_unbacked(chain, removed)
    return applied


class _Recorded:
    """One application's new facts, those applied so far, and the place of the newest fact each loan had before it:
    whether a new fact comes after a later one of its loan, and the facts its loan is replayed from when it does.

    A loan's places are read once per application, when its first new fact is applied — after the loan's record was
    read ``FOR UPDATE``: a receipt's transaction applying later facts of the loan at the same time has committed
    them by then (PostgreSQL), or has not begun to (it waits for this one, and applies its facts on top)."""

    def __init__(self, ledger: LedgerRepository, chain: LedgerChain, new: Iterable[int]) -> None:
        self._ledger, self._chain = ledger, chain
        self._new = set(new)
        self._done: set[int] = set()  # new facts applied (or kept as facts only) so far
        self._newest: dict[int, tuple[int, int] | None] = {}  # loan ref → newest place of its facts recorded before

    @property
    def _contracts(self) -> tuple[str, str]:
        return self._chain.aggregator, self._chain.collateral_manager

    def late(self, fact: Fact) -> bool:
        """Whether a fact of its loan recorded before this application comes after ``fact`` in chain order."""
        if fact.loan_ref is None:
            return False
        if fact.loan_ref not in self._newest:
            places = self._ledger.fact_places(self._chain.chain_id, fact.loan_ref, self._contracts)
            before = [(number, index) for fact_id, number, index in places if fact_id not in self._new]
            self._newest[fact.loan_ref] = max(before, default=None)
        newest = self._newest[fact.loan_ref]
        return newest is not None and newest > chain_order(fact)

    def applied(self, fact: Fact) -> None:
        self._done.add(fact.id)

    def through(self, fact: Fact) -> list[Fact]:
        """The facts of ``fact``'s loan as far as it is applied: those recorded before, those new here applied
        already, and ``fact`` itself — in chain order (not the new ones still to come)."""
        if fact.loan_ref is None:
            return [fact]
        return [
            found
            for found in self._ledger.loan_facts(self._chain.chain_id, fact.loan_ref, self._contracts)
            if found.id not in self._new or found.id in self._done or found.id == fact.id
        ]


def _claim_for_accept(ledger: LedgerRepository, chain: LedgerChain, loan_ref: int) -> None:
    loan = ledger.loan_by_onchain_id(chain.chain_id, chain.aggregator, loan_ref)
    if loan is not None and loan.opened_outside_accept:
        ledger.save_loan(_accepted(loan))


def _accepted(loan: LoanState) -> LoanState:
    return replace(loan, opened_outside_accept=False)


def _apply(
    ledger: LedgerRepository,
    chain: LedgerChain,
    fact: Fact,
    recorded: _Recorded,
    *,
    via_accept: bool,
    now: datetime | None,
) -> None:
    if fact.event == "LoanOpened":
        loan = _open(ledger, chain, fact, via_accept=via_accept, now=now)
    else:
        if fact.loan_ref is None:
            return
        found = ledger.loan_by_onchain_id(chain.chain_id, chain.aggregator, fact.loan_ref)
        if found is None:  # its LoanOpened is not recorded (read from a later block on): a fact only
            return
        loan = found
    late = recorded.late(fact)
    replayed = caught_up(loan, chain, recorded.through(fact)) if late else None
    if replayed is not None and replayed.loan is not None:  # a later fact of it came first: replayed in order
        _save_rebuilt(ledger, loan, replayed)
        loan = replayed.loan
    elif fact.event != "LoanOpened":
        liquidated = fact.event == "LoanClosed" and ledger.liquidated_in(loan.id, fact.tx_hash)
        loan, entry = moved(loan, fact, liquidated_in_tx=liquidated)
        ledger.save_loan(loan)
        if entry is not None:
            ledger.add_entry(entry)
    _publish(ledger, loan, fact, late=late)


def _publish(ledger: LedgerRepository, loan: LoanState, fact: Fact, *, late: bool = False) -> None:
    """The fact's loan event, written to the outbox in the ledger's transaction; of a ``late`` fact (one applied
    after a later fact of its loan), only an event still true of the loan (``told_late``)."""
    found = fact_event(fact, loan.status)
    if found is not None and (not late or told_late(found, loan.status)):
        ledger.publish(loan, found)


def _open(
    ledger: LedgerRepository, chain: LedgerChain, fact: Fact, *, via_accept: bool, now: datetime | None
) -> LoanState:
    digest = fact.hex("offerDigest")
    loan_id = loan_id_for(chain.chain_id, chain.aggregator, digest)
    loan = ledger.loan_to_open(loan_id, chain.chain_id, chain.aggregator, fact.uint("loanId"))
    # found under another id: a record made before ledger ids were derived from the offer digest
    if loan is not None and loan.id != loan_id and loan.offer_digest != digest:
        raise LedgerError(f"loan {fact.uint('loanId')} on chain {chain.chain_id} is recorded with another offer")
    if loan is None:
        quote = quote_here(chain, ledger.quote_by_digest(digest))
        borrower = None if quote is not None else ledger.borrower_by_wallet(fact.checksum("borrower"))
        loan = new_loan(chain, digest, quote, borrower, via_accept=via_accept, now=now or datetime.now(UTC))
    elif via_accept:
        loan = _accepted(loan)
    loan = opened(loan, chain, fact)
    ledger.save_loan(loan)
    return loan


def _rebuild(ledger: LedgerRepository, chain: LedgerChain, loan: LoanState, *, reopened: bool) -> None:
    """Recompute one loan from its remaining facts after a reorg removed some (``projection.rebuilt``)."""
    facts = ledger.loan_facts(
        chain.chain_id, int(loan.onchain_loan_id or 0), (chain.aggregator, chain.collateral_manager)
    )
    _save_rebuilt(ledger, loan, rebuilt(loan, chain, facts, reopened=reopened))


def _save_rebuilt(ledger: LedgerRepository, loan: LoanState, result: Rebuilt) -> None:
    """``loan`` as ``result`` recomputed it, its entries with it (deleted when it is no loan any more)."""
    ledger.clear_entries(loan.id)
    if result.loan is None:
        ledger.delete_loan(loan.id)
        return
    ledger.save_loan(result.loan)
    for entry in result.entries:
        ledger.add_entry(entry)
