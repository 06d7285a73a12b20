"""In-memory fakes for unit tests of the outbox, the retraction and the relay: ``InMemoryOutbox``
(``aggregator.outbox.OutboxStore``: events, deliveries and the attempt log in dictionaries, with the SQL store's
ordering rules — ``due`` heads each (loan, recipient) stream), ``InMemoryRecipients``
(``aggregator.event_destinations.RecipientDirectory``), ``InMemoryLeases`` and ``InMemoryRelayStore``
(``aggregator.relay.RelayStore``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from aggregator.event_destinations import BorrowerWebhook, ProviderWebhook
from aggregator.outbox import ATTEMPT_LOG_ROWS, PENDING, Attempt, Delivery, EventLoan, OutboxEvent
from store.leases import Lease, LeaseLost


class InMemoryOutbox:
    def __init__(self, loans: Sequence[EventLoan] = ()) -> None:
        self.loans: dict[str, EventLoan] = {loan.loan_id: loan for loan in loans}
        self.sequences: dict[str, int] = {}
        self.events_by_id: dict[str, OutboxEvent] = {}
        self.deliveries_by_id: dict[int, Delivery] = {}
        self.attempts: dict[int, list[Attempt]] = {}

    def loan(self, loan_id: str) -> EventLoan | None:
        return self.loans.get(loan_id)

    def lock_sequence(self, loan_id: str) -> int:
        return self.sequences.setdefault(loan_id, 0)

    def set_sequence(self, loan_id: str, sequence: int) -> None:
        self.sequences[loan_id] = sequence

    def event(self, event_id: str) -> OutboxEvent | None:
        return self.events_by_id.get(event_id)

    def event_by_key(self, loan_id: str, dedup_key: str) -> OutboxEvent | None:
        return next((e for e in self.events_by_id.values() if e.loan_id == loan_id and e.dedup_key == dedup_key), None)

    def lock_event(self, event_id: str) -> OutboxEvent | None:
        return self.event(event_id)  # one thread, writes at once: nothing to wait for

    def written_before(self, loan_id: str, dedup_key: str, event_id: str) -> tuple[OutboxEvent | None, bool]:
        return self.event_by_key(loan_id, dedup_key), event_id in self.events_by_id

    def events(self, loan_id: str, after: int = 0, limit: int | None = None) -> list[OutboxEvent]:
        found = (e for e in self.events_by_id.values() if e.loan_id == loan_id and e.sequence > after)
        return sorted(found, key=lambda e: e.sequence)[:limit]

    def add_event(self, event: OutboxEvent) -> None:
        if event.id in self.events_by_id:
            raise ValueError(f"event {event.id} exists")
        self.events_by_id[event.id] = event

    def update_event(self, event: OutboxEvent) -> None:
        self.events_by_id[event.id] = event

    def undispatched(self, limit: int) -> list[OutboxEvent]:
        waiting = (e for e in self.events_by_id.values() if e.dispatched_at is None)
        return sorted(waiting, key=lambda e: (e.occurred_at, e.loan_id, e.sequence))[:limit]

    def add_deliveries(self, pending: Sequence[tuple[str, str]], now: datetime) -> None:
        for event_id, recipient in pending:
            if any(d.event_id == event_id and d.recipient == recipient for d in self.deliveries_by_id.values()):
                continue
            event = self.events_by_id[event_id]
            delivery_id = max(self.deliveries_by_id, default=0) + 1
            self.deliveries_by_id[delivery_id] = Delivery(
                delivery_id, event_id, event.loan_id, event.sequence, recipient, PENDING, 0, now, now
            )

    def deliveries(self, event_id: str) -> list[Delivery]:
        return [d for _, d in sorted(self.deliveries_by_id.items()) if d.event_id == event_id]

    def delivery(self, delivery_id: int) -> Delivery | None:
        return self.deliveries_by_id.get(delivery_id)

    def due(self, now: datetime, limit: int, per_recipient: int | None = None) -> list[Delivery]:
        pending = [d for d in self.deliveries_by_id.values() if d.status == PENDING]
        undispatched = [e for e in self.events_by_id.values() if e.dispatched_at is None]

        def heads_its_stream(d: Delivery) -> bool:
            return not any(
                e.loan_id == d.loan_id and e.recipient == d.recipient and e.sequence < d.sequence for e in pending
            ) and not any(e.loan_id == d.loan_id and e.sequence < d.sequence for e in undispatched)

        ready = sorted(
            (d for d in pending if d.next_attempt_at <= now and heads_its_stream(d)),
            key=lambda d: (d.next_attempt_at, d.id),
        )
        if per_recipient is not None:  # each recipient's soonest per_recipient only
            place: Counter[str] = Counter()
            shares = []
            for delivery in ready:
                place[delivery.recipient] += 1
                if place[delivery.recipient] <= per_recipient:
                    shares.append(delivery)
            ready = shares
        return ready[:limit]

    def update_delivery(self, delivery: Delivery) -> None:
        self.deliveries_by_id[delivery.id] = replace(delivery)

    def add_attempts(self, delivery_id: int, attempts: Sequence[Attempt]) -> None:
        log = self.attempts.setdefault(delivery_id, [])
        log.extend(attempts)
        del log[:-ATTEMPT_LOG_ROWS]


class InMemoryRecipients:
    """``aggregator.event_destinations.RecipientDirectory`` from dictionaries."""

    def __init__(self, providers: Sequence[ProviderWebhook] = (), borrowers: Sequence[BorrowerWebhook] = ()) -> None:
        self.providers = {p.provider_id: p for p in providers}
        self.borrowers = {b.borrower_id: b for b in borrowers}

    def provider(self, provider_id: str) -> ProviderWebhook | None:
        return self.providers.get(provider_id)

    def borrower(self, borrower_id: str) -> BorrowerWebhook | None:
        return self.borrowers.get(borrower_id)


class InMemoryLeases:
    """``store.leases.LeaseStore`` in one process: one holder per (kind, chain) until its lease expires."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.clock = clock
        self.held: dict[tuple[str, int], Lease] = {}
        self._tokens = 0

    async def acquire(self, kind: str, chain_id: int, holder: str, ttl: timedelta) -> Lease | None:
        now, current = self.clock(), self.held.get((kind, chain_id))
        if current is not None and current.holder != holder and current.expires_at > now:
            return None
        if current is None or current.holder != holder:
            self._tokens += 1
            current = Lease(kind, chain_id, holder, self._tokens, now + ttl)
        self.held[(kind, chain_id)] = replace(current, expires_at=now + ttl)
        return self.held[(kind, chain_id)]

    async def renew(self, lease: Lease, ttl: timedelta) -> Lease:
        self.check(lease)
        self.held[(lease.kind, lease.chain_id)] = renewed = replace(lease, expires_at=self.clock() + ttl)
        return renewed

    async def release(self, lease: Lease) -> None:
        if self.held.get((lease.kind, lease.chain_id)) == lease:
            del self.held[(lease.kind, lease.chain_id)]

    def check(self, lease: Lease) -> None:
        current = self.held.get((lease.kind, lease.chain_id))
        if current is None or (current.holder, current.token) != (lease.holder, lease.token):
            raise LeaseLost(lease.kind, lease.chain_id, f"token {lease.token} of {lease.holder} no longer holds")

    def fence(self, session: object, lease: Lease) -> None:
        self.check(lease)


@dataclass
class InMemoryRelayUnitOfWork:
    outbox: InMemoryOutbox
    recipients: InMemoryRecipients
    leases: InMemoryLeases
    commits: int = 0

    def fence(self, lease: Lease) -> None:
        self.leases.check(lease)

    def commit(self) -> None:
        self.commits += 1


class InMemoryRelayStore:
    """``aggregator.relay.RelayStore`` over one ``InMemoryOutbox`` (writes take effect at once: no rollback)."""

    def __init__(
        self,
        outbox: InMemoryOutbox | None = None,
        recipients: InMemoryRecipients | None = None,
        leases: InMemoryLeases | None = None,
    ) -> None:
        self.outbox = outbox or InMemoryOutbox()
        self.recipients = recipients or InMemoryRecipients()
        self.leases = leases or InMemoryLeases()

    @contextmanager
    def unit_of_work(self) -> Iterator[InMemoryRelayUnitOfWork]:
        yield InMemoryRelayUnitOfWork(self.outbox, self.recipients, self.leases)
