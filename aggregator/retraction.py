"""Loan events of chain facts a reorg removed: cancelled when nobody had them yet, retracted out loud otherwise.

The indexer deletes the facts of blocks a reorg removed (``aggregator.ledger.record_batch``), rebuilds the loans they
touched and applies the range's events again. An outbox event written for a deleted fact still stands when a fact
the loan has after that makes the same event (same type and key: the transaction mined again, in another block): its
id is the one the recipients know. Otherwise it is *retracted*, in the indexer's transaction:

* deliveries not made yet are ``cancelled`` (an event not dispatched yet gets none), so nobody hears of it from now;
* every recipient that already had it gets ``loan.event_retracted`` (``{"retracted_event_id", "retracted_type",
  "retracted_sequence", "reason": "reorg", "tx_hash", "block_number", "block_hash"}``), in the loan's order after
  what it already received — only those recipients, since the others never heard of it.

A loan whose opening the reorg removed has no record left (its past-due notices go with it): its events that no
fact made — ``loan.past_due`` — are retracted with the others, so a recipient is never left with a notice about a
loan that does not exist.

A retracted event gives up its key: when the transaction is mined again later (in a block beyond the reorg's range),
its fact makes a new event, with a new id, delivered as any other.

A delivery in flight while its event is retracted may still reach its recipient: when its send ends and it arrived,
or may have (the answer came after the relay's timeout), the relay adds that recipient to the retraction
(``compensate``), so what a recipient was told is always taken back. The retraction's ``loan`` is the loan as the
ledger has it after the reorg, or — when its opening was removed and the record is gone — as the retracted event
showed it.

All of it works on plain values through the outbox's store (``aggregator.outbox.OutboxStore``) and the ledger's
reads (``LoanFacts``), both in the indexer's (or the relay's) transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from aggregator import outbox
from aggregator.loan_events import fact_event
from aggregator.outbox import CANCELLED, DELIVERED, PENDING, EventLoan, OutboxEvent, OutboxStore
from aggregator.projection import Fact, LedgerChain, LoanState

REASON_REORG = "reorg"
#: the last error of a delivery cancelled because its event was retracted
RETRACTED = "retracted: a reorg removed the block of its fact"


@dataclass(frozen=True, slots=True)
class RemovedFact:
    """A deleted fact of a loan, and the dedup key of the loan event it made (if it made one)."""

    loan_id: str
    dedup_key: str
    tx_hash: str
    block_number: int
    block_hash: str


class LoanFacts(Protocol):
    """The ledger's reads a retraction needs (``aggregator.ledger.LedgerRepository`` has them)."""

    def loan(self, loan_id: str) -> LoanState | None: ...

    def loan_facts(self, chain_id: int, loan_ref: int, addresses: Iterable[str]) -> list[Fact]: ...


def removed_fact(loan: LoanState, fact: Fact) -> RemovedFact | None:
    """What ``fact`` (about to be deleted) made in ``loan``'s outbox; None for a fact that makes no loan event."""
    found = fact_event(fact, loan.status)
    if found is None:
        return None
    return RemovedFact(
        loan.id, outbox.dedup_key(found.event_type, found.key), fact.tx_hash, fact.block_number, fact.block_hash
    )


def retract_unbacked(
    events: OutboxStore, ledger: LoanFacts, chain: LedgerChain, removed: Iterable[RemovedFact]
) -> list[str]:
    """Retract the events of ``removed`` facts that no remaining fact of their loan makes again; run after the
    reorg's range was applied. Returns the ids of the events retracted."""
    removed = list(removed)
    made: dict[str, set[str]] = {}
    retracted = []
    for fact in removed:
        event = events.event_by_key(fact.loan_id, fact.dedup_key)
        if event is None or event.retracted_at is not None:
            continue
        if fact.loan_id not in made:
            made[fact.loan_id] = _made_now(ledger, chain, fact.loan_id)
        if fact.dedup_key in made[fact.loan_id]:
            continue
        retract(events, event, fact)
        retracted.append(event.id)
    for loan_id in dict.fromkeys(fact.loan_id for fact in removed):
        if ledger.loan(loan_id) is None:  # its opening went with the reorg: nothing it was told of stands
            retracted += _retract_standing(events, loan_id)
    return retracted


def _retract_standing(events: OutboxStore, loan_id: str) -> list[str]:
    """Retract the events of a loan whose record is gone that still stand: those no chain fact made
    (``loan.past_due``, from the default job), whose removal ``retract_unbacked``'s facts do not name."""
    standing = [
        event
        for event in events.events(loan_id)
        if event.retracted_at is None and event.event_type != outbox.LOAN_EVENT_RETRACTED
    ]
    for event in standing:
        retract(events, event, None)
    return [event.id for event in standing]


def _made_now(ledger: LoanFacts, chain: LedgerChain, loan_id: str) -> set[str]:
    """The dedup keys of the loan events the loan's remaining facts make."""
    loan = ledger.loan(loan_id)
    if loan is None or loan.onchain_loan_id is None:
        return set()
    keys = set()
    addresses = (chain.aggregator, chain.collateral_manager)
    for fact in ledger.loan_facts(chain.chain_id, int(loan.onchain_loan_id), addresses):
        found = fact_event(fact, loan.status)
        if found is not None:
            keys.add(outbox.dedup_key(found.event_type, found.key))
    return keys


def retract(events: OutboxStore, event: OutboxEvent, fact: RemovedFact | None) -> OutboxEvent:
    """Cancel what is not delivered of ``event``; tell the recipients that had it, or may have: a delivery still
    pending after an attempt (its answer lost, a timeout, say) may have been processed. Returns the event
    retracted.

    The event's row is locked first: a relay dispatching it at this moment has it locked until its deliveries are
    committed, and they are read (and cancelled) only then — without the lock this read none, the relay's insert
    came after, and a retracted event was delivered with nothing to take it back."""
    event = events.lock_event(event.id) or event
    now = datetime.now(UTC)
    had_it = []
    for delivery in events.deliveries(event.id):
        if delivery.status == PENDING:
            events.update_delivery(replace(delivery, status=CANCELLED, last_error=RETRACTED))
            if delivery.attempts > 0:
                had_it.append(delivery.recipient)
        elif delivery.status == DELIVERED:
            had_it.append(delivery.recipient)
    retracted = replace(
        event,
        retracted_at=now,
        # its key is free again: the fact mined later, in a block the reorg did not reach, is a new event, new id
        dedup_key=f"{event.dedup_key}#retracted:{event.id}",
        dispatched_at=event.dispatched_at or now,  # nobody will get it when it was not dispatched: no deliveries
    )
    events.update_event(retracted)
    if had_it:
        compensate(events, retracted, had_it, _payload(retracted, fact))
    return events.event(event.id) or retracted


def compensate(
    events: OutboxStore, event: OutboxEvent, recipients: Iterable[str], payload: Mapping[str, Any] | None = None
) -> str:
    """``loan.event_retracted`` for ``event`` to ``recipients`` (each once; written once per event). Returns its
    id."""
    # the loan as the ledger has it now, or — its record gone with its opening — as the retracted event showed it
    loan = events.loan(event.loan_id)
    shown = dict(event.body.get("loan") or {}) | {"loan_id": event.loan_id}
    view = loan.view if loan is not None else shown
    retraction, _ = outbox.write(
        events,
        EventLoan(event.loan_id, event.provider_id, event.borrower_id, view),
        event_type=outbox.LOAN_EVENT_RETRACTED,
        payload=payload or _payload(event, None),
        key=event.id,
    )
    now = datetime.now(UTC)
    events.add_deliveries([(retraction.id, recipient) for recipient in recipients], now)
    if retraction.dispatched_at is None:  # its recipients are exactly those that had it
        events.update_event(replace(retraction, dispatched_at=now))
    current = events.event(event.id) or event
    events.update_event(replace(current, retracted_by=retraction.id))
    return retraction.id


def _payload(event: OutboxEvent, fact: RemovedFact | None) -> dict[str, Any]:
    data = event.body.get("data") or {}
    return {
        "retracted_event_id": event.id,
        "retracted_type": event.event_type,
        "retracted_sequence": event.sequence,
        "reason": REASON_REORG,
        "tx_hash": fact.tx_hash if fact is not None else data.get("tx_hash"),
        "block_number": fact.block_number if fact is not None else data.get("block_number"),
        "block_hash": fact.block_hash if fact is not None else None,
    }
