"""Retractions racing the outbox relay, on real PostgreSQL (its row locks are what serialize them) with a lender's
receiver on loopback: a reorg retracting an event while the relay dispatches it waits for the dispatch and cancels
the deliveries it made, so the retracted event is never sent."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from aggregator.event_destinations import Destination, EventDestinations, RecipientDirectory
from aggregator.outbox import OutboxEvent
from aggregator.relay import DEPLOYMENT, LEASE_KIND, OutboxRelay, RelaySettings
from aggregator.retraction import retract
from chain.events import ChainEvent
from providers.destinations import DestinationGuard, PinnedTransport
from providers.secrets import SecretBox
from store.db import Database
from store.loan_ledger import apply_events
from store.outbox import CANCELLED, OutboxDeliveryRow, OutboxEventRow, SqlOutboxStore
from store.relay import SqlRelayStore
from tests.support.ledger_facts import CHAIN, LoanFacts
from tests.support.receiver import EventReceiver

pytestmark = pytest.mark.integration

LENDER, SECRET = "sim-bank", "race-test-secret"
FAST = RelaySettings(ttl=timedelta(seconds=3), interval=0.05, tries=1, first_wait=0.05, timeout=2)
BOX = SecretBox.from_master_key(bytes(range(32)))


@pytest.fixture(scope="module")
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema("outbox_races"))
    db.migrate()
    yield db
    db.dispose()


def _apply(database: Database, facts: list[ChainEvent]) -> None:
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, facts)
        uow.commit()


def _retract(database: Database, event_id: str) -> None:
    """What the indexer's reorg handling does (``aggregator.retraction.retract``), in its own transaction."""
    with database.unit_of_work() as uow:
        events = SqlOutboxStore(uow.session)
        event = events.event(event_id)
        assert event is not None
        retract(events, event, None)
        uow.commit()


class RetractingMidDispatch(EventDestinations):
    """Starts a retraction of ``event_id`` in another transaction while the relay's dispatch, having read its batch,
    resolves the event's recipients; gives it a second to finish (it cannot while the dispatch holds the event)."""

    def __init__(self, database: Database, event_id: str, to: Destination) -> None:
        super().__init__(BOX, {LENDER: to})
        self.database, self.event_id = database, event_id
        self.retraction: threading.Thread | None = None
        self.waited_for_the_dispatch = False

    def recipients(self, directory: RecipientDirectory, event: OutboxEvent) -> list[str]:
        if event.id == self.event_id and self.retraction is None:
            self.retraction = threading.Thread(target=_retract, args=(self.database, self.event_id))
            self.retraction.start()
            self.retraction.join(timeout=1)
            self.waited_for_the_dispatch = self.retraction.is_alive()
        return super().recipients(directory, event)


async def test_a_retraction_racing_the_relays_dispatch_cancels_what_the_dispatch_made(database: Database) -> None:
    """Before, the retraction read the event's deliveries (none yet), the dispatch inserted them after it, and the
    retracted repayment went to the lender with no ``loan.event_retracted`` ever following."""
    receiver = EventReceiver(SECRET).start()
    loan = LoanFacts(loan_ref=7_001)
    loan.quoted_by(database, LENDER)
    _apply(database, [loan.opened(), loan.repaid(1_000, 400_000_000, 600_000_000)])
    with database.unit_of_work() as uow:
        query = select(OutboxEventRow.id).where(OutboxEventRow.loan_id == loan.loan_id, OutboxEventRow.sequence == 2)
        repayment = uow.session.scalars(query).one()
    destinations = RetractingMidDispatch(database, repayment, Destination(receiver.url, SECRET))
    store = SqlRelayStore(database)
    try:
        async with httpx.AsyncClient(transport=PinnedTransport(DestinationGuard(["127.0.0.0/8"]))) as http:
            relay = OutboxRelay(store, destinations, http, settings=FAST)
            relay.lease = lease = await store.leases.acquire(LEASE_KIND, DEPLOYMENT, relay.holder, FAST.ttl)
            assert lease is not None
            relay._dispatch()
            assert destinations.retraction is not None
            destinations.retraction.join()  # the retraction is done before anything is sent
            for _ in range(3):
                await relay.round()
                for task in list(relay._inflight.values()):
                    await task
            await store.leases.release(lease)
    finally:
        receiver.stop()
    assert [(event.type, event.sequence) for event in receiver.events()] == [("loan.opened", 1)]
    with database.unit_of_work() as uow:
        event = uow.session.get_one(OutboxEventRow, repayment)
        deliveries = uow.session.scalars(select(OutboxDeliveryRow).where(OutboxDeliveryRow.event_id == repayment))
        assert [(d.recipient, d.status, d.attempts) for d in deliveries] == [(f"provider:{LENDER}", CANCELLED, 0)]
        assert event.retracted_at is not None
        assert event.retracted_by is None  # nobody had it: nothing to take back
    assert destinations.waited_for_the_dispatch, "the retraction did not wait for the dispatch's lock"


async def test_a_send_in_flight_when_its_event_is_retracted_is_taken_back_though_its_answer_came_late(
    database: Database,
) -> None:
    """The lender stores the repayment and answers after the relay's timeout; a reorg retracts it meanwhile, while
    the first attempt is in flight (no attempt counted: the retraction tells nobody). Before, the relay saw a failed
    send of a cancelled delivery and dropped it: the lender kept a retracted repayment with no
    ``loan.event_retracted``. Now the attempt is logged and the lender is told."""
    receiver = EventReceiver(SECRET).start()
    loan = LoanFacts(loan_ref=7_002)
    loan.quoted_by(database, LENDER)
    destinations = EventDestinations(BOX, {LENDER: Destination(receiver.url, SECRET)})
    store = SqlRelayStore(database)

    async def settle(relay: OutboxRelay) -> None:
        await relay.round()
        for task in list(relay._inflight.values()):
            await task

    try:
        async with httpx.AsyncClient(transport=PinnedTransport(DestinationGuard(["127.0.0.0/8"]))) as http:
            relay = OutboxRelay(store, destinations, http, settings=replace(FAST, timeout=1))
            relay.lease = lease = await store.leases.acquire(LEASE_KIND, DEPLOYMENT, relay.holder, FAST.ttl)
            assert lease is not None
            await asyncio.to_thread(_apply, database, [loan.opened()])
            await settle(relay)
            receiver.answer_after = 2.5  # stores what it gets, answers after the relay gave up
            await asyncio.to_thread(_apply, database, [loan.repaid(1_000, 400_000_000, 600_000_000)])
            assert await relay.round() == 1
            async with asyncio.timeout(10):
                while True:  # until the lender has it (and is taking its time to answer)
                    if len(receiver.events()) == 2:
                        break
                    await asyncio.sleep(0.05)
            (repayment,) = [e.event_id for e in receiver.events() if e.type == "loan.repayment"]
            await asyncio.to_thread(_retract, database, repayment)  # the reorg, while the answer is awaited
            receiver.answer_after = 0
            for task in list(relay._inflight.values()):
                await task
            for _ in range(3):
                await settle(relay)
            await store.leases.release(lease)
    finally:
        receiver.stop()
    assert [(e.type, e.sequence) for e in receiver.events()] == [
        ("loan.opened", 1),
        ("loan.repayment", 2),
        ("loan.event_retracted", 3),
    ]
    assert receiver.events()[2].body["data"]["retracted_event_id"] == repayment
    with database.unit_of_work() as uow:
        event = uow.session.get_one(OutboxEventRow, repayment)
        (delivery,) = uow.session.scalars(select(OutboxDeliveryRow).where(OutboxDeliveryRow.event_id == repayment))
        assert (delivery.status, delivery.attempts) == (CANCELLED, 1)
        assert event.retracted_by is not None
