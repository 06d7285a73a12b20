"""The outbox relay's recipients among themselves, on real PostgreSQL with receivers on loopback: a lender whose
webhook hangs, with far more overdue loans than a batch holds, delays no other recipient's events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest

from aggregator import outbox
from aggregator.event_destinations import Destination, EventDestinations
from aggregator.outbox import EventLoan
from aggregator.relay import OutboxRelay, RelaySettings
from providers.destinations import DestinationGuard, PinnedTransport
from providers.secrets import SecretBox
from store.db import Database
from store.outbox import SqlOutboxStore
from store.relay import SqlRelayStore
from tests.support.receiver import EventReceiver

pytestmark = pytest.mark.integration

FAST = RelaySettings(
    ttl=timedelta(seconds=3), interval=0.05, tries=1, first_wait=0.05, first_backoff=0.2, max_backoff=0.4, timeout=1
)
BOX = SecretBox.from_master_key(bytes(range(32)))


@pytest.fixture(scope="module")
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema("relay_recipients"))
    db.migrate()
    yield db
    db.dispose()


def _open(database: Database, loans: list[EventLoan]) -> None:
    """Each loan's ``loan.opened``, as the ledger writes it."""
    with database.unit_of_work() as uow:
        events = SqlOutboxStore(uow.session)
        for loan in loans:
            outbox.write(events, loan, event_type=outbox.LOAN_OPENED, payload={}, key="opened")
        uow.commit()


async def _until(condition: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``condition`` holds (``seconds`` when it does not by then)."""
    started = time.monotonic()
    while True:
        waited = time.monotonic() - started
        if condition() or waited >= seconds:
            return waited
        await asyncio.sleep(0.05)


async def test_a_lender_whose_webhook_hangs_on_many_loans_delays_no_other_recipient(database: Database) -> None:
    """60 overdue loans of one hanging lender, a batch of 8 and 2 sends per recipient: before, the batch held the
    hanging lender's 8 soonest heads and nothing else, and the other lender's event waited ~30 s for them to time
    out one by one (at the real defaults, 200 per batch, for good); now each batch holds every recipient's share."""
    slow, ok = EventReceiver("slow-secret").start(), EventReceiver("ok-secret").start()
    slow.answer_after = 30  # records, then answers long after the relay's timeout: every attempt fails
    destinations = EventDestinations(
        BOX, {"slow-bank": Destination(slow.url, "slow-secret"), "ok-bank": Destination(ok.url, "ok-secret")}
    )
    _open(database, [EventLoan(f"slow-{n}", "slow-bank", None, {"loan_id": f"slow-{n}"}) for n in range(60)])
    settings = replace(FAST, batch=8, per_recipient=2)
    try:
        async with httpx.AsyncClient(transport=PinnedTransport(DestinationGuard(["127.0.0.0/8"]))) as http:
            relay = OutboxRelay(SqlRelayStore(database), destinations, http, settings=settings)
            stop = asyncio.Event()
            running = asyncio.create_task(relay.run(stop))
            try:
                await _until(lambda: len(slow.events()) >= 2, 10)  # the hanging lender's sends are in flight
                await asyncio.sleep(1.5)  # ... and its first ones timed out: every head overdue or in flight
                await asyncio.to_thread(_open, database, [EventLoan("ok-1", "ok-bank", None, {"loan_id": "ok-1"})])
                waited = await _until(lambda: bool(ok.events()), 8)
            finally:
                stop.set()
                await running
    finally:
        slow.stop()
        ok.stop()
    assert [(event.type, event.loan_id) for event in ok.events()] == [("loan.opened", "ok-1")]
    assert waited < 3, f"the other lender's event waited {waited:.1f} s"
