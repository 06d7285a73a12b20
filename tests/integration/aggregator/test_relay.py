"""The outbox relay against real webhook receivers on loopback and real PostgreSQL: a borrower's receiver that is
down holds back only that borrower's stream (the provider gets every loan's events meanwhile) and gets everything,
in order, once it is back; an answer lost after delivery makes a duplicate with the same event id; the relay
process holding the lease killed (SIGKILL) between ledger changes and their delivery leaves them to the process
that takes the lease over, which delivers them all in order."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from aggregator.event_destinations import Destination, EventDestinations, borrower_secret_subject
from aggregator.relay import DEPLOYMENT, LEASE_KIND, OutboxRelay, RelaySettings
from chain.events import ChainEvent
from providers.destinations import DestinationGuard, PinnedTransport, lender_client
from providers.secrets import SecretBox
from store.api import BorrowerRow
from store.db import Database
from store.leases import LeaseRow
from store.loan_ledger import apply_events
from store.outbox import OutboxAttemptRow, OutboxDeliveryRow, SqlOutboxRepository
from store.relay import SqlRelayStore
from tests.support.ledger_facts import CHAIN, LoanFacts
from tests.support.receiver import EventReceiver, Received

pytestmark = pytest.mark.integration

PROVIDER = "sim-bank"
PROVIDER_SECRET = "provider-webhook-secret"
BORROWER_SECRET = "borrower-webhook-secret"
MASTER_KEY = bytes(range(32))
FAST = RelaySettings(
    ttl=timedelta(seconds=3), interval=0.05, tries=2, first_wait=0.05, first_backoff=0.2, max_backoff=0.4, timeout=2
)


@pytest.fixture(scope="module")
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema("relay_test"))
    db.migrate()
    yield db
    db.dispose()


def _apply(database: Database, events: list[ChainEvent]) -> None:
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, events)
        uow.commit()


def _wait(condition: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


async def _await(condition: Callable[[], Any]) -> Any:
    async with asyncio.timeout(60):
        while True:
            value = await asyncio.to_thread(condition)
            if value:
                return value
            await asyncio.sleep(0.05)


def _event_ids(database: Database, loan_id: str) -> list[str]:
    with database.unit_of_work() as uow:
        return [event.id for event in SqlOutboxRepository(uow.session).events(loan_id)]


def _stream(received: list[Received], loan_id: str) -> list[int]:
    return [event.sequence for event in received if event.loan_id == loan_id]


def _deliveries(database: Database, loan_id: str) -> list[OutboxDeliveryRow]:
    with database.unit_of_work() as uow:
        query = select(OutboxDeliveryRow).where(OutboxDeliveryRow.loan_id == loan_id)
        return list(uow.session.scalars(query.order_by(OutboxDeliveryRow.recipient, OutboxDeliveryRow.sequence)))


def _set_borrower_webhook(database: Database, borrower_id: str, url: str) -> None:
    box = SecretBox.from_master_key(MASTER_KEY)
    with database.unit_of_work() as uow:
        borrower = uow.session.get_one(BorrowerRow, borrower_id)
        borrower.webhook_url = url
        sealed = box.seal(borrower_secret_subject(borrower_id), BORROWER_SECRET)
        borrower.webhook_secret_sealed = base64.b64encode(sealed).decode()
        uow.commit()


async def test_a_receiver_down_holds_back_only_its_own_stream_and_gets_everything_back(database: Database) -> None:
    provider = EventReceiver(PROVIDER_SECRET).start()
    borrower = EventReceiver(BORROWER_SECRET)  # down: nothing listens on its port yet
    first, second = LoanFacts(loan_ref=9_001), LoanFacts(loan_ref=9_002)
    borrower_id = first.quoted_by(database, PROVIDER)
    _set_borrower_webhook(database, borrower_id, borrower.url)
    second.quoted_by(database, PROVIDER)  # its borrower set no webhook URL
    _apply(database, [first.opened(), first.repaid(1_000, 400_000_000, 600_000_000)])
    _apply(database, [second.opened(), second.repaid(2_000, 1_000_000_000, 0), second.closed()])
    _apply(database, [first.repaid(3_000, 600_000_000, 0), first.closed()])
    second_ids = _event_ids(database, second.loan_id)
    provider.lose_answer_once.add(second_ids[1])  # delivered, but the relay never hears so: sent again

    destinations = EventDestinations(
        SecretBox.from_master_key(MASTER_KEY), {PROVIDER: Destination(provider.url, PROVIDER_SECRET)}
    )
    http = httpx.AsyncClient(transport=PinnedTransport(DestinationGuard(["127.0.0.0/8"])))
    relay = OutboxRelay(SqlRelayStore(database), destinations, http, settings=FAST)
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        # the provider gets both loans' events while the borrower's receiver is down
        await _await(lambda: len({e.event_id for e in provider.events()}) == 7)
        deliveries = _deliveries(database, first.loan_id)
        to_borrower = [d for d in deliveries if d.recipient == f"borrower:{borrower_id}"]
        assert [d.status for d in to_borrower] == ["pending"] * 4
        await _await(lambda: all(d.attempts >= 2 for d in _deliveries(database, first.loan_id)[:1]))
        head = _deliveries(database, first.loan_id)[0]
        assert head.recipient.startswith("borrower:")
        assert head.last_error is not None
        assert "ConnectError" in head.last_error
        assert head.last_status_code is None
        assert all(d.attempts == 0 for d in _deliveries(database, first.loan_id)[1:4])  # in order: only the head

        borrower.start()
        await _await(lambda: all(d.status == "delivered" for d in _deliveries(database, first.loan_id)))
    finally:
        stop.set()
        await running
        await http.aclose()
        provider.stop()
        borrower.stop()

    first_ids = _event_ids(database, first.loan_id)
    assert [e.event_id for e in borrower.events()] == first_ids  # none lost, in order, once
    assert _stream(borrower.events(), first.loan_id) == [1, 2, 3, 4]
    assert _stream(provider.events(), first.loan_id) == [1, 2, 3, 4]
    # the lost answer: the same event twice, recognisable by its id, and nothing after it overtook it
    assert _stream(provider.events(), second.loan_id) == [1, 2, 2, 3]
    assert [e.event_id for e in provider.events() if e.loan_id == second.loan_id] == [
        second_ids[0],
        second_ids[1],
        second_ids[1],
        second_ids[2],
    ]
    assert all(e.header_event_id == e.event_id for e in provider.events())
    assert provider.refused == []
    assert borrower.refused == []
    first_event = borrower.events()[0].body
    assert first_event["type"] == "loan.opened"
    assert first_event["loan"]["offer_ref"] == "ref-9001"
    assert first_event["loan"]["provider_id"] == PROVIDER
    with database.unit_of_work() as uow:
        head = uow.session.scalars(
            select(OutboxDeliveryRow).where(
                OutboxDeliveryRow.event_id == first_ids[0], OutboxDeliveryRow.recipient.startswith("borrower:")
            )
        ).one()
        attempts = select(OutboxAttemptRow).where(OutboxAttemptRow.delivery_id == head.id)
        log = list(uow.session.scalars(attempts.order_by(OutboxAttemptRow.id)))  # in the order they were made
    assert len(log) == head.attempts >= 3
    assert log[-1].status_code == 200
    assert all(attempt.status_code is None and attempt.error for attempt in log[:-1])


def _attempts(database: Database, loan_id: str) -> list[OutboxAttemptRow]:
    with database.unit_of_work() as uow:
        ids = select(OutboxDeliveryRow.id).where(OutboxDeliveryRow.loan_id == loan_id)
        query = select(OutboxAttemptRow).where(OutboxAttemptRow.delivery_id.in_(ids))
        return list(uow.session.scalars(query.order_by(OutboxAttemptRow.id)))


async def test_an_answer_that_trickles_or_never_ends_costs_an_attempt_its_timeout_at_most(database: Database) -> None:
    """A receiver that answers 200 and then trickles its body a byte every 0.2 s (12 s for 60 bytes), then one that
    floods 256 MiB: the status is the answer, so each event is delivered once; each attempt is over within the
    attempt's timeout (2 s), where each slow read used to restart it; of the flood only a little is read. Through
    the platform's own lender client (aiohttp under httpx's interface), as the relay's workers build it."""
    provider = EventReceiver(PROVIDER_SECRET).start()
    provider.answer_body = (60, 0.2)
    loan = LoanFacts(loan_ref=9_101)
    loan.quoted_by(database, PROVIDER)  # its borrower set no webhook URL: the provider's deliveries alone
    destinations = EventDestinations(
        SecretBox.from_master_key(MASTER_KEY), {PROVIDER: Destination(provider.url, PROVIDER_SECRET)}
    )
    http = lender_client(DestinationGuard(["127.0.0.0/8"]))
    relay = OutboxRelay(SqlRelayStore(database), destinations, http, settings=FAST)
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        _apply(database, [loan.opened()])
        await _await(lambda: [d.status for d in _deliveries(database, loan.loan_id)] == ["delivered"])
        provider.answer_body = (256 * 1024 * 1024, 0.0)
        _apply(database, [loan.repaid(1_000, 400_000_000, 600_000_000)])
        await _await(lambda: [d.status for d in _deliveries(database, loan.loan_id)] == ["delivered"] * 2)
    finally:
        stop.set()
        await running
        await http.aclose()
        provider.stop()
    attempts = _attempts(database, loan.loan_id)
    assert [(a.status_code, a.error) for a in attempts] == [(200, None), (200, None)]
    assert all(a.duration_ms < FAST.timeout * 1000 + 1_000 for a in attempts), [a.duration_ms for a in attempts]
    assert provider.answered_bytes < 64 * 1024 * 1024, provider.answered_bytes
    assert _stream(provider.events(), loan.loan_id) == [1, 2]


@pytest.fixture
def relay_process(database: Database, tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(webhook_url: str) -> subprocess.Popen[bytes]:
        env = os.environ | {
            "CREDITMESH_DATA_DIR": str(tmp_path),
            "CREDITMESH_DATABASE_URL": database.url,
            "CREDITMESH_OUTBOUND_ALLOWED_NETWORKS": json.dumps(["127.0.0.0/8"]),
            "CREDITMESH_HTTP_LENDERS": json.dumps(
                [
                    {
                        "provider_id": PROVIDER,
                        "base_url": "http://127.0.0.1:9",
                        "secret": PROVIDER_SECRET,
                        "webhook_url": webhook_url,
                    }
                ]
            ),
            "CREDITMESH_OUTBOX_POLL_SECONDS": "0.05",
            "CREDITMESH_OUTBOX_MAX_BACKOFF_SECONDS": "0.3",
        }
        with (tmp_path / "relay.log").open("ab") as log:
            command = [sys.executable, "-m", "api.cli", "relay", "--lease-seconds", "2"]
            started.append(subprocess.Popen(command, env=env, stderr=log))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _leader_pid(database: Database) -> int | None:
    """The pid of the relay process holding the lease (its holder name is ``host:pid:random``)."""
    with database.unit_of_work() as uow:
        lease = uow.session.get(LeaseRow, (LEASE_KIND, DEPLOYMENT))
        return None if lease is None or lease.holder is None else int(lease.holder.split(":")[1])


def test_events_outlive_a_relay_killed_before_delivering_them(
    database: Database, relay_process: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    receiver = EventReceiver(PROVIDER_SECRET).start()
    receiver.failing_with = 503
    loan = LoanFacts(loan_ref=9_003)
    loan.quoted_by(database, PROVIDER)
    try:
        # two relay processes (started together: a process start is the slow part); one leads, one waits
        relays = {process.pid: process for process in (relay_process(receiver.url), relay_process(receiver.url))}
        _apply(database, [loan.opened(), loan.repaid(1_000, 500_000_000, 500_000_000)])
        _wait(lambda: any(d.attempts > 0 for d in _deliveries(database, loan.loan_id)))
        leader = relays.pop(_wait(lambda: _leader_pid(database)))
        leader.send_signal(signal.SIGKILL)
        assert leader.wait(timeout=10) == -signal.SIGKILL
        # more ledger changes while the leader is dead; the receiver comes back
        _apply(database, [loan.repaid(2_000, 500_000_000, 0), loan.closed()])
        receiver.failing_with = None
        # the other process takes the lease over once the dead holder's expires, and delivers everything
        _wait(
            lambda: (
                all(d.status == "delivered" for d in _deliveries(database, loan.loan_id))
                and _leader_pid(database) in relays
            )
        )
    finally:
        receiver.stop()
    assert [e.event_id for e in receiver.events()] == _event_ids(database, loan.loan_id)
    assert _stream(receiver.events(), loan.loan_id) == [1, 2, 3, 4]
    assert [e.type for e in receiver.events()] == ["loan.opened", "loan.repayment", "loan.repayment", "loan.closed"]
    assert all(e.header_event_id == e.event_id for e in receiver.events())
