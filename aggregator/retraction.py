"""Loan events of chain facts a reorg removed: cancelled when nobody had them yet, retracted out loud otherwise.

The indexer deletes the facts of blocks a reorg removed (``aggregator.ledger.apply_batch``), rebuilds the loans they
touched and applies the range's events again. An outbox event written for a deleted fact still stands when a fact
the loan has after that makes the same event (same type and key: the transaction mined again, in another block): its
id is the one the recipients know. Otherwise it is *retracted*, in the indexer's transaction:

* deliveries not made yet are ``cancelled`` (an event not dispatched yet gets none), so nobody hears of it from now;
* every recipient that already had it gets ``loan.event_retracted`` (``{"retracted_event_id", "retracted_type",
  "retracted_sequence", "reason": "reorg", "tx_hash", "block_number", "block_hash"}``), in the loan's order after
  what it already received — only those recipients, since the others never heard of it.

A retracted event gives up its key: when the transaction is mined again later (in a block beyond the reorg's range),
its fact makes a new event, with a new id, delivered as any other.

A delivery in flight while its event is retracted may still reach its recipient: the relay then records it as
delivered and adds that recipient to the retraction (``compensate``), so what a recipient was told is always taken
back. The retraction's ``loan`` is the loan as the ledger has it after the reorg, or — when its opening was removed
and the record is gone — as the retracted event showed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from aggregator import outbox
from aggregator.loan_events import fact_event
from aggregator.projection import Fact, LoanState
from store.aggregator import LoanRow, QuoteRow
from store.ledger import SqlLedgerRepository
from store.outbox import CANCELLED, DELIVERED, PENDING, OutboxDeliveryRow, OutboxEventRow, SqlOutboxRepository

REASON_REORG = "reorg"


@dataclass(frozen=True, slots=True)
class RemovedFact:
    """A deleted fact of a loan, and the dedup key of the loan event it made (if it made one)."""

    loan_id: str
    dedup_key: str
    tx_hash: str
    block_number: int
    block_hash: str


def removed_fact(loan: LoanState, fact: Fact) -> RemovedFact | None:
    """What ``fact`` (about to be deleted) made in ``loan``'s outbox; None for a fact that makes no loan event."""
    found = fact_event(fact, loan.status)
    if found is None:
        return None
    return RemovedFact(
        loan.id, outbox.dedup_key(found.event_type, found.key), fact.tx_hash, fact.block_number, fact.block_hash
    )


def retract_unbacked(session: Session, contracts: tuple[int, str, str], removed: Iterable[RemovedFact]) -> list[str]:
    """Retract the events of ``removed`` facts that no remaining fact of their loan makes again; run after the
    reorg's range was applied. ``contracts``: (chain id, CreditAggregator, CollateralManager). Returns the ids of
    the events retracted."""
    ledger, repo = SqlLedgerRepository(session), SqlOutboxRepository(session)
    made: dict[str, set[str]] = {}
    retracted = []
    for fact in removed:
        event_id = repo.event_by_key(fact.loan_id, fact.dedup_key)
        if event_id is None:
            continue
        event = repo.event(event_id)
        if event.retracted_at is not None:
            continue
        if fact.loan_id not in made:
            made[fact.loan_id] = _made_now(session, ledger, contracts, fact.loan_id)
        if fact.dedup_key in made[fact.loan_id]:
            continue
        retract(session, event, fact)
        retracted.append(event_id)
    return retracted


def _made_now(session: Session, ledger: SqlLedgerRepository, contracts: tuple[int, str, str], loan_id: str) -> set[str]:
    """The dedup keys of the loan events the loan's remaining facts make."""
    loan = session.get(LoanRow, loan_id)
    if loan is None or loan.onchain_loan_id is None:
        return set()
    chain_id, aggregator, manager = contracts
    keys = set()
    for fact in ledger.loan_facts(chain_id, int(loan.onchain_loan_id), (aggregator, manager)):
        found = fact_event(fact, loan.status)
        if found is not None:
            keys.add(outbox.dedup_key(found.event_type, found.key))
    return keys


def retract(session: Session, event: OutboxEventRow, fact: RemovedFact) -> None:
    """Cancel what is not delivered of ``event``; tell the recipients that had it."""
    repo = SqlOutboxRepository(session)
    now = datetime.now(UTC)
    had_it = []
    for delivery in repo.deliveries(event.id):
        if delivery.status == PENDING:
            delivery.status, delivery.last_error = CANCELLED, "retracted: a reorg removed the block of its fact"
        elif delivery.status == DELIVERED:
            had_it.append(delivery.recipient)
    event.retracted_at = now
    # its key is free again: the fact mined later, in a block the reorg did not reach, is a new event with a new id
    event.dedup_key = f"{event.dedup_key}#retracted:{event.id}"
    if event.dispatched_at is None:
        event.dispatched_at = now  # nobody will get it: no deliveries
    if had_it:
        compensate(session, event, had_it, _payload(event, fact))


def compensate(
    session: Session, event: OutboxEventRow, recipients: Iterable[str], payload: Mapping[str, Any] | None = None
) -> str:
    """``loan.event_retracted`` for ``event`` to ``recipients`` (each once; written once per event). Returns its
    id."""
    repo = SqlOutboxRepository(session)
    loan = session.get(LoanRow, event.loan_id)
    if loan is not None:
        quote = None if loan.quote_id is None else session.get(QuoteRow, loan.quote_id)
        offer_ref = None if quote is None else quote.offer.get("providerRef")
        view: Mapping[str, Any] = outbox.loan_view(loan, str(offer_ref) if offer_ref else None)
    else:
        view = dict(event.body.get("loan") or {}) | {"loan_id": event.loan_id}
    retraction, _ = outbox.write(
        session,
        loan_id=event.loan_id,
        provider_id=event.provider_id,
        borrower_id=event.borrower_id,
        view=view,
        event_type=outbox.LOAN_EVENT_RETRACTED,
        payload=payload or _payload(event, None),
        key=event.id,
    )
    now = datetime.now(UTC)
    for recipient in recipients:
        if repo.delivery(retraction.id, recipient) is None:
            repo.add(
                OutboxDeliveryRow(
                    event_id=retraction.id,
                    loan_id=retraction.loan_id,
                    sequence=retraction.sequence,
                    recipient=recipient,
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    retraction.dispatched_at = retraction.dispatched_at or now  # its recipients are exactly those that had it
    event.retracted_by = retraction.id
    session.flush()
    return retraction.id


def _payload(event: OutboxEventRow, fact: RemovedFact | None) -> dict[str, Any]:
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
