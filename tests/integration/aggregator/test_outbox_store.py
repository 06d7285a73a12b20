"""One contract for both outbox stores (``aggregator.outbox.OutboxStore``): the in-memory fake the unit tests use
and ``store.outbox.SqlOutboxStore`` on a real (SQLite) database hold events, deliveries and attempts alike — numbered
per loan, written once per key, dispatched oldest first, one pending delivery per (event, recipient), and each
(loan, recipient) stream due only at its head."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from aggregator import outbox
from aggregator.outbox import ATTEMPT_LOG_ROWS, DELIVERED, PENDING, Attempt, EventLoan, OutboxStore
from aggregator.outbox_memory import InMemoryOutbox
from store.base import Base
from store.db import Database
from store.outbox import OutboxAttemptRow, OutboxDeliveryRow, OutboxEventRow, OutboxSequenceRow, SqlOutboxStore

pytestmark = pytest.mark.integration

T0 = datetime(2030, 1, 1, tzinfo=UTC)
A = EventLoan("loan-a", "sim-bank", "b1", {"loan_id": "loan-a"})
B = EventLoan("loan-b", "sim-bank", None, {"loan_id": "loan-b"})
OUTBOX_TABLES = [
    Base.metadata.tables[row.__tablename__]
    for row in (OutboxEventRow, OutboxSequenceRow, OutboxDeliveryRow, OutboxAttemptRow)
]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('outbox-store') / 'outbox.db'}")
    # the outbox's own tables (what the store touches here), without the whole migration history
    Base.metadata.create_all(db.engine, tables=OUTBOX_TABLES)
    yield db
    db.dispose()


@pytest.fixture(params=["memory", "sql"])
def events(request: pytest.FixtureRequest, database: Database) -> Iterator[OutboxStore]:
    if request.param == "memory":
        yield InMemoryOutbox()
        return
    with database.unit_of_work() as uow:  # rolled back at the end: each test starts from an empty outbox
        yield SqlOutboxStore(uow.session)


def test_events_are_numbered_per_loan_written_once_per_key_and_dispatched_oldest_first(events: OutboxStore) -> None:
    a1, _ = outbox.write(events, A, event_type=outbox.LOAN_OPENED, payload={}, key="opened", occurred_at=T0)
    b1, _ = outbox.write(events, B, event_type=outbox.LOAN_OPENED, payload={}, key="opened", occurred_at=T0)
    a2, _ = outbox.write(
        events, A, event_type=outbox.LOAN_PAST_DUE, payload={"bucket": "1-29"}, key="1", occurred_at=T0
    )
    again, new = outbox.write(events, A, event_type=outbox.LOAN_OPENED, payload={}, key="opened")
    assert (again, new) == (a1, False)
    assert [(e.id, e.sequence) for e in events.events("loan-a")] == [(a1.id, 1), (a2.id, 2)]
    assert events.event_by_key("loan-a", outbox.dedup_key(outbox.LOAN_PAST_DUE, "1")) == a2
    assert events.event(a2.id) == a2
    assert events.event("no-such-event") is None
    assert [e.id for e in events.undispatched(10)] == [a1.id, a2.id, b1.id]
    assert [e.id for e in events.undispatched(1)] == [a1.id]
    events.update_event(replace(a1, dispatched_at=T0))
    assert [e.id for e in events.undispatched(10)] == [a2.id, b1.id]
    assert events.lock_sequence("loan-a") == 2


def test_a_streams_later_delivery_waits_for_its_head_and_its_undispatched_events(events: OutboxStore) -> None:
    a1, _ = outbox.write(events, A, event_type=outbox.LOAN_OPENED, payload={}, key="opened", occurred_at=T0)
    a2, _ = outbox.write(events, A, event_type=outbox.LOAN_REPAYMENT, payload={}, key="0x1:1", occurred_at=T0)
    events.add_deliveries([(a2.id, "provider:sim-bank")], T0)
    assert events.due(T0, 10) == []  # loan.opened is not dispatched yet: its recipients may come before
    for event in (a1, a2):
        events.add_deliveries([(event.id, "provider:sim-bank")], T0)
        events.add_deliveries([(event.id, "borrower:b1")], T0 + timedelta(seconds=5))
        events.update_event(replace(event, dispatched_at=T0))
    assert len(events.deliveries(a2.id)) == 2  # the second add of (a2, provider) wrote nothing
    (head,) = events.due(T0, 10)
    assert (head.event_id, head.recipient, head.status, head.attempts) == (a1.id, "provider:sim-bank", PENDING, 0)
    assert [d.event_id for d in events.due(T0 + timedelta(seconds=5), 10)] == [a1.id, a1.id]

    events.add_attempts(head.id, [Attempt(T0, 200, None, 7)])
    events.update_delivery(replace(head, status=DELIVERED, attempts=1, delivered_at=T0, last_status_code=200))
    stored = events.delivery(head.id)
    assert stored is not None
    assert (stored.status, stored.attempts, stored.delivered_at, stored.last_status_code) == (DELIVERED, 1, T0, 200)
    assert [(d.event_id, d.recipient) for d in events.due(T0, 10)] == [(a2.id, "provider:sim-bank")]


def _attempt_log(events: OutboxStore, delivery_id: int) -> list[Attempt]:
    if isinstance(events, InMemoryOutbox):
        return events.attempts.get(delivery_id, [])
    assert isinstance(events, SqlOutboxStore)
    rows = events.session.scalars(
        select(OutboxAttemptRow).where(OutboxAttemptRow.delivery_id == delivery_id).order_by(OutboxAttemptRow.id)
    )
    return [Attempt(row.attempted_at, row.status_code, row.error, row.duration_ms) for row in rows]


def test_a_deliverys_attempt_log_keeps_its_newest_attempts(events: OutboxStore) -> None:
    """A receiver down for a month is tried thousands of times: the log keeps each delivery's newest
    ``ATTEMPT_LOG_ROWS`` attempts (the delivery row counts them all), and no other delivery's."""
    a1, _ = outbox.write(events, A, event_type=outbox.LOAN_OPENED, payload={}, key="opened", occurred_at=T0)
    events.add_deliveries([(a1.id, "provider:sim-bank"), (a1.id, "borrower:b1")], T0)
    down, up = sorted(events.deliveries(a1.id), key=lambda d: d.recipient, reverse=True)
    events.add_attempts(up.id, [Attempt(T0, 204, None, 5)])
    tried = [Attempt(T0 + timedelta(minutes=n), 503, f"HTTP 503 ({n})", 10) for n in range(ATTEMPT_LOG_ROWS + 7)]
    for start in range(0, len(tried), 3):  # a few attempts per round, as the relay logs them
        events.add_attempts(down.id, tried[start : start + 3])
    assert _attempt_log(events, down.id) == tried[-ATTEMPT_LOG_ROWS:]
    assert _attempt_log(events, up.id) == [Attempt(T0, 204, None, 5)]


def test_a_batch_holds_each_recipients_share_however_many_heads_one_of_them_has(events: OutboxStore) -> None:
    """A lender whose webhook hangs has every loan's head overdue: the batch takes its soonest ``per_recipient``
    heads only, and the other recipients' heads — due later — are in it too (each stream still at its head)."""
    slow = [EventLoan(f"slow-{n}", "slow-bank", None, {"loan_id": f"slow-{n}"}) for n in range(6)]
    ok = EventLoan("ok-1", "ok-bank", "b1", {"loan_id": "ok-1"})
    written = [
        outbox.write(events, loan, event_type=outbox.LOAN_OPENED, payload={}, key="opened", occurred_at=T0)[0]
        for loan in [*slow, ok]
    ]
    later, _ = outbox.write(events, ok, event_type=outbox.LOAN_REPAYMENT, payload={}, key="0x1:1", occurred_at=T0)
    for n, event in enumerate([*written, later]):
        recipients = [f"provider:{event.provider_id}"] + (
            [f"borrower:{event.borrower_id}"] if event.borrower_id else []
        )
        events.add_deliveries([(event.id, recipient) for recipient in recipients], T0 + timedelta(seconds=n))
        events.update_event(replace(event, dispatched_at=T0))
    now = T0 + timedelta(minutes=1)
    assert [(d.recipient, d.loan_id) for d in events.due(now, 4)] == [
        ("provider:slow-bank", f"slow-{n}") for n in range(4)
    ]
    shares = [(d.recipient, d.loan_id, d.sequence) for d in events.due(now, 4, per_recipient=2)]
    assert shares == [
        ("provider:slow-bank", "slow-0", 1),
        ("provider:slow-bank", "slow-1", 1),
        ("provider:ok-bank", "ok-1", 1),
        ("borrower:b1", "ok-1", 1),
    ]
    assert len(events.due(now, 100, per_recipient=3)) == 3 + 2  # ok-1's repayment waits behind its opening
