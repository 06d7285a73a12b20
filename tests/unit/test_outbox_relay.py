"""The outbox, its retraction and the relay on the in-memory fakes (``aggregator.outbox_memory``): events numbered
per loan and written once per key; the relay's dispatch, its per-stream order and its choices (which due sends start
now, the backoff, a delivery's state after a send); a retracted event cancelled where it was not delivered and taken
back where it was, also when its send was in flight. The SQL store runs the same rules on real databases in
``tests/integration/aggregator`` (``test_outbox_store.py`` holds both to one contract)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from aggregator import outbox
from aggregator.event_destinations import (
    BorrowerWebhook,
    Destination,
    EventDestinations,
    ProviderWebhook,
    borrower_secret_subject,
)
from aggregator.ledger_memory import InMemoryLedger
from aggregator.outbox import CANCELLED, DELIVERED, NO_DESTINATION, PENDING, Attempt, Delivery, EventLoan, OutboxEvent
from aggregator.outbox_memory import InMemoryOutbox, InMemoryRecipients, InMemoryRelayStore
from aggregator.projection import LoanState
from aggregator.relay import DEPLOYMENT, LEASE_KIND, OutboxRelay, RelaySettings, backoff, pick, settle
from aggregator.retraction import RemovedFact, compensate, retract, retract_unbacked
from providers.secrets import SecretBox
from store.leases import LeaseLost
from tests.support.ledger_facts import CHAIN

pytestmark = pytest.mark.unit

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LOAN = EventLoan("loan-1", "sim-bank", "b1", {"loan_id": "loan-1", "status": "active"})
OTHER = EventLoan("loan-2", "sim-bank", None, {"loan_id": "loan-2", "status": "active"})
FAST = RelaySettings(tries=1, first_backoff=2.0, max_backoff=30.0, timeout=1.0)
BOX = SecretBox.from_master_key(bytes(range(32)))


@dataclass(frozen=True)
class Send:
    delivery_id: int
    recipient: str


def test_one_recipient_never_takes_more_than_its_share_of_the_slots() -> None:
    due = [Send(i, "provider:slow-bank") for i in range(10)] + [Send(10, "borrower:b1"), Send(11, "provider:ok")]
    chosen = pick(due, {"provider:slow-bank": 1}, room=8, per_recipient=4)
    assert [s.delivery_id for s in chosen] == [0, 1, 2, 10, 11]
    assert pick(due, {}, room=2, per_recipient=4) == due[:2]
    assert pick(due, {"provider:slow-bank": 4}, room=8, per_recipient=4) == due[10:]


def test_the_backoff_doubles_per_failed_round_up_to_its_cap() -> None:
    settings = RelaySettings(first_backoff=2.0, max_backoff=30.0)
    assert [backoff(settings, rounds) for rounds in (1, 2, 3, 4, 5, 9)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_delivery_after_a_send_is_delivered_gone_or_due_again_after_its_rounds_backoff() -> None:
    pending = Delivery(1, "e1", "loan-1", 1, "provider:sim-bank", PENDING, 3, T0, T0)
    failed = [Attempt(T0, 503, "HTTP 503", 12), Attempt(T0, None, "ConnectError", 3)]
    to = Destination("https://lender.test/events", "s")
    again = settle(pending, to, failed, False, T0, RelaySettings(tries=3, first_backoff=2.0, max_backoff=30.0))
    assert (again.status, again.attempts, again.url) == (PENDING, 5, to.url)
    assert (again.last_status_code, again.last_error) == (None, "ConnectError")
    assert again.next_attempt_at == T0 + timedelta(seconds=4)  # 5 attempts in rounds of 3: the second round failed
    done = settle(pending, to, [Attempt(T0, 200, None, 8)], True, T0, FAST)
    assert (done.status, done.delivered_at, done.last_status_code, done.last_error) == (DELIVERED, T0, 200, None)
    gone = settle(pending, None, [], False, T0, FAST)
    assert (gone.status, gone.attempts) == (NO_DESTINATION, 3)
    assert gone.last_error == "the recipient has no webhook URL any more"


def test_a_loans_events_are_numbered_in_order_and_a_keyed_event_is_written_once() -> None:
    events = InMemoryOutbox([LOAN, OTHER])
    first = outbox.append(events, loan_id="loan-1", event_type=outbox.LOAN_OPENED, payload={}, key="opened")
    again = outbox.append(events, loan_id="loan-1", event_type=outbox.LOAN_OPENED, payload={}, key="opened")
    outbox.append(events, loan_id="loan-2", event_type=outbox.LOAN_OPENED, payload={}, key="opened")
    due = outbox.append(events, loan_id="loan-1", event_type=outbox.LOAN_PAST_DUE, payload={"bucket": "1-29"}, key="1")
    assert first == again
    assert [(e.sequence, e.event_type) for e in events.events("loan-1")] == [(1, "loan.opened"), (2, "loan.past_due")]
    assert [e.sequence for e in events.events("loan-2")] == [1]
    body = events.events("loan-1")[1].body
    assert (body["event_id"], body["sequence"], body["data"], body["loan"]) == (due, 2, {"bucket": "1-29"}, LOAN.view)
    with pytest.raises(outbox.OutboxError, match="unknown loan event type"):
        outbox.append(events, loan_id="loan-1", event_type="loan.renamed", payload={})
    with pytest.raises(outbox.OutboxError, match="not recorded"):
        outbox.append(events, loan_id="loan-9", event_type=outbox.LOAN_OPENED, payload={})
    assert events.sequences == {"loan-1": 2, "loan-2": 1}


def _delivered(events: InMemoryOutbox, event_id: str, recipient: str) -> None:
    events.add_deliveries([(event_id, recipient)], T0)
    (delivery,) = [d for d in events.deliveries(event_id) if d.recipient == recipient]
    events.update_delivery(
        settle(delivery, Destination("https://x.test", "s"), [Attempt(T0, 200, None, 1)], True, T0, FAST)
    )


def test_a_retracted_event_is_cancelled_where_pending_and_taken_back_only_where_it_was_delivered() -> None:
    events = InMemoryOutbox([LOAN])
    repaid, _ = outbox.write(events, LOAN, event_type=outbox.LOAN_REPAYMENT, payload={"tx_hash": "0xab"}, key="0xab:3")
    _delivered(events, repaid.id, "provider:sim-bank")
    events.add_deliveries([(repaid.id, "borrower:b1"), (repaid.id, "provider:sim-fintech")], T0)
    # tried once, its answer lost (a timeout): it may have been processed, so it is taken back too
    (tried,) = [d for d in events.deliveries(repaid.id) if d.recipient == "provider:sim-fintech"]
    events.update_delivery(replace(tried, attempts=1, last_error="ReadTimeout"))

    retract(events, repaid, None)

    gone = events.event(repaid.id)
    assert gone is not None
    assert gone.retracted_at is not None
    assert {d.recipient: d.status for d in events.deliveries(repaid.id)} == {
        "provider:sim-bank": DELIVERED,
        "borrower:b1": CANCELLED,
        "provider:sim-fintech": CANCELLED,
    }
    (retraction,) = [e for e in events.events("loan-1") if e.event_type == outbox.LOAN_EVENT_RETRACTED]
    assert gone.retracted_by == retraction.id
    assert retraction.dispatched_at is not None  # its recipients are exactly those that had the event
    assert sorted((d.recipient, d.status) for d in events.deliveries(retraction.id)) == [
        ("provider:sim-bank", PENDING),
        ("provider:sim-fintech", PENDING),
    ]
    data = retraction.body["data"]
    assert (data["retracted_event_id"], data["retracted_type"], data["tx_hash"]) == (
        repaid.id,
        "loan.repayment",
        "0xab",
    )
    # the key is free again: the same fact mined later makes a new event, under a new id
    later, new = outbox.write(events, LOAN, event_type=outbox.LOAN_REPAYMENT, payload={}, key="0xab:3")
    assert new
    assert later.id != repaid.id
    # a second compensation of the same event writes nothing new
    assert compensate(events, gone, ["provider:sim-bank"]) == retraction.id
    assert len(events.deliveries(retraction.id)) == 2


class Receivers:
    """Webhook receivers behind ``httpx.MockTransport``: what each URL got, and the URLs that answer 503."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, int]] = []  # (url, event type, sequence)
        self.down: set[str] = set()

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url in self.down:
            return httpx.Response(503)
        body = json.loads(request.content)
        assert request.headers["X-Creditmesh-Event-Id"] == body["event_id"]
        self.got.append((url, body["type"], body["sequence"]))
        return httpx.Response(204)


async def _relay(store: InMemoryRelayStore, receivers: Receivers) -> OutboxRelay:
    destinations = EventDestinations(BOX, {"sim-bank": Destination("https://bank.test/events", "bank-secret")})
    http = httpx.AsyncClient(transport=httpx.MockTransport(receivers.handle))
    relay = OutboxRelay(store, destinations, http, settings=FAST, holder="relay-a")
    relay.lease = await store.leases.acquire(LEASE_KIND, DEPLOYMENT, relay.holder, FAST.ttl)
    return relay


async def _round(relay: OutboxRelay) -> int:
    started = await relay.round()
    await asyncio.gather(*relay._inflight.values())
    return started


def _borrower_webhook(url: str) -> BorrowerWebhook:
    sealed = base64.b64encode(BOX.seal(borrower_secret_subject("b1"), "borrower-secret")).decode()
    return BorrowerWebhook("b1", url, sealed)


async def test_the_relay_sends_each_stream_in_order_and_a_receiver_down_holds_back_only_its_own() -> None:
    events = InMemoryOutbox([LOAN, OTHER])
    for loan in (LOAN, OTHER):
        outbox.write(events, loan, event_type=outbox.LOAN_OPENED, payload={}, key="opened")
        outbox.write(events, loan, event_type=outbox.LOAN_REPAYMENT, payload={}, key="0x01:1")
    store = InMemoryRelayStore(events, InMemoryRecipients(borrowers=[_borrower_webhook("https://b1.test/hook")]))
    receivers = Receivers()
    receivers.down.add("https://b1.test/hook")
    relay = await _relay(store, receivers)
    try:
        assert await _round(relay) == 3  # each stream's head: the bank's two loans, the borrower's first
        assert await _round(relay) == 2  # the bank's second events; the borrower's waits behind its failed head
        assert await _round(relay) == 0  # the failed head is not due before its backoff
    finally:
        await relay.http.aclose()

    bank = [(t, s) for url, t, s in receivers.got if url == "https://bank.test/events"]
    assert bank == [("loan.opened", 1)] * 2 + [("loan.repayment", 2)] * 2
    to_borrower = [d for e in events.events("loan-1") for d in events.deliveries(e.id) if d.recipient == "borrower:b1"]
    assert [(d.sequence, d.status, d.attempts, d.last_status_code) for d in to_borrower] == [
        (1, PENDING, 1, 503),
        (2, PENDING, 0, None),
    ]
    assert to_borrower[0].next_attempt_at > datetime.now(UTC)
    assert all(e.dispatched_at is not None for e in events.events_by_id.values())
    assert len(events.attempts[to_borrower[0].id]) == 1


async def test_deliveries_that_cannot_be_signed_are_held_back_said_once_and_leave_the_batch_to_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A provider with a webhook URL and no HMAC secret (or one that does not open): its deliveries were skipped
    untouched every round, stayed the soonest due, and — 200 of them — took every batch for good. Now each is put
    back by ``max_backoff`` with the reason as its last error (the loan's events show it), still pending, and the
    relay says so once per recipient and hold, not every round."""
    pool = [EventLoan(f"pool-{n}", "pool-1", None, {"loan_id": f"pool-{n}"}) for n in range(3)]
    events = InMemoryOutbox([*pool, OTHER])
    for loan in [*pool, OTHER]:
        outbox.write(events, loan, event_type=outbox.LOAN_OPENED, payload={}, key="opened")
    no_secret = ProviderWebhook("pool-1", "https://pool.test/events", True, {"address": "0xabc"})
    store = InMemoryRelayStore(events, InMemoryRecipients([no_secret]))
    receivers = Receivers()
    relay = await _relay(store, receivers)
    try:
        with caplog.at_level(logging.ERROR, logger="aggregator.relay"):
            started = datetime.now(UTC)
            assert await _round(relay) == 1  # loan-2's opening to sim-bank
            assert await _round(relay) == 0
    finally:
        await relay.http.aclose()
    assert receivers.got == [("https://bank.test/events", "loan.opened", 1)]
    held = [d for loan in pool for e in events.events(loan.loan_id) for d in events.deliveries(e.id)]
    assert [(d.recipient, d.status, d.attempts) for d in held] == [("provider:pool-1", PENDING, 0)] * 3
    assert {d.last_error for d in held} == {"held: pool-1: no HMAC secret to sign its loan events with"}
    assert all(d.next_attempt_at >= started + timedelta(seconds=FAST.max_backoff) for d in held)
    said = [r.getMessage() for r in caplog.records if "held" in r.getMessage()]
    assert said == [
        "outbox relay: 3 deliveries to provider:pool-1 held for 30 s: pool-1: no HMAC secret to sign its loan events "
        "with"
    ]


async def test_a_send_in_flight_when_its_event_is_retracted_is_taken_back_once_it_arrives() -> None:
    events = InMemoryOutbox([LOAN])
    repaid, _ = outbox.write(events, LOAN, event_type=outbox.LOAN_REPAYMENT, payload={}, key="0x02:1")
    store = InMemoryRelayStore(events)
    receivers = Receivers()
    relay = await _relay(store, receivers)
    try:
        relay._dispatch()
        (in_flight,) = relay._due(10)
        retract(events, repaid, None)  # nobody had it yet: cancelled, nothing to take back
        assert [d.status for d in events.deliveries(repaid.id)] == [CANCELLED]
        await relay._send(in_flight)  # ... but the send was already on its way, and arrives
        assert [d.status for d in events.deliveries(repaid.id)] == [DELIVERED]
        await _round(relay)
    finally:
        await relay.http.aclose()
    assert [(t, s) for _, t, s in receivers.got] == [("loan.repayment", 1), ("loan.event_retracted", 2)]
    gone = events.event(repaid.id)
    assert gone is not None
    assert gone.retracted_by is not None


async def test_deliveries_a_retraction_did_not_see_are_cancelled_or_taken_back() -> None:
    """A dispatch racing a retraction can make deliveries of an event after the retraction looked for them (the SQL
    store's row locks serialize the two; this is the backstop): such a delivery is cancelled instead of sent, one
    already tried is taken back, and one whose send was in flight and arrived is taken back too."""
    events = InMemoryOutbox([LOAN, OTHER])
    repaid, _ = outbox.write(events, LOAN, event_type=outbox.LOAN_REPAYMENT, payload={}, key="0x04:1")
    opened, _ = outbox.write(events, OTHER, event_type=outbox.LOAN_OPENED, payload={}, key="opened")
    store = InMemoryRelayStore(events)
    receivers = Receivers()
    relay = await _relay(store, receivers)
    try:
        retract(events, repaid, None)  # no deliveries yet: nothing to cancel, nobody to tell
        events.add_deliveries([(repaid.id, "provider:sim-bank"), (repaid.id, "borrower:b1")], datetime.now(UTC))
        (tried,) = [d for d in events.deliveries(repaid.id) if d.recipient == "borrower:b1"]
        events.update_delivery(replace(tried, attempts=1, last_error="ReadTimeout"))  # it may have arrived
        relay._dispatch()
        sends = relay._due(10)
        assert [s.event_id for s in sends] == [opened.id]
        # the opening's send is in flight when a retraction that does not see its delivery lands
        events.update_event(replace(events.event(opened.id) or opened, retracted_at=T0))
        await relay._send(sends[0])
        await _round(relay)
    finally:
        await relay.http.aclose()
    assert {d.recipient: (d.status, d.last_error) for d in events.deliveries(repaid.id)} == {
        "provider:sim-bank": (CANCELLED, "retracted: a reorg removed the block of its fact"),
        "borrower:b1": (CANCELLED, "retracted: a reorg removed the block of its fact"),
    }
    taken_back = [e for e in events.events_by_id.values() if e.event_type == outbox.LOAN_EVENT_RETRACTED]
    assert sorted(
        (e.body["data"]["retracted_event_id"], d.recipient) for e in taken_back for d in events.deliveries(e.id)
    ) == sorted([(repaid.id, "borrower:b1"), (opened.id, "provider:sim-bank")])
    assert [(t, s) for _, t, s in receivers.got] == [("loan.opened", 1), ("loan.event_retracted", 2)]


async def _relay_to(
    events: InMemoryOutbox, handle: Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
) -> OutboxRelay:
    """A relay to one lender's receiver, ``handle``, with ``tries`` 1 and a 0.3 s timeout."""
    store = InMemoryRelayStore(events)
    destinations = EventDestinations(BOX, {"sim-bank": Destination("https://bank.test/events", "bank-secret")})
    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    relay = OutboxRelay(store, destinations, http, settings=replace(FAST, timeout=0.3), holder="relay-a")
    relay.lease = await store.leases.acquire(LEASE_KIND, DEPLOYMENT, relay.holder, FAST.ttl)
    return relay


async def test_a_send_retracted_in_flight_whose_answer_comes_after_the_timeout_is_taken_back() -> None:
    """The lender stores the event and answers after the relay's timeout, while a reorg retracts it: the first
    attempt was in flight (no attempt counted yet), so the retraction told nobody, and the relay, seeing a failed
    send of a cancelled delivery, dropped it — the lender kept a retracted event for good. The attempt is now logged
    and the lender gets ``loan.event_retracted`` (it may have stored the event: the answer was only late)."""
    got: list[str] = []
    retracted: list[str] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        got.append(body["type"])
        if body["type"] == outbox.LOAN_REPAYMENT:
            retract(events, events.event(body["event_id"]) or repaid, None)  # the reorg, as it is received
            retracted.append(body["event_id"])
            await asyncio.sleep(1)  # answered after the relay's timeout
        return httpx.Response(204)

    events = InMemoryOutbox([LOAN])
    relay = await _relay_to(events, handle)
    repaid, _ = outbox.write(events, LOAN, event_type=outbox.LOAN_REPAYMENT, payload={}, key="0x05:1")
    try:
        for _ in range(3):
            await _round(relay)
    finally:
        await relay.http.aclose()
    assert retracted == [repaid.id]
    assert got == [outbox.LOAN_REPAYMENT, outbox.LOAN_EVENT_RETRACTED]
    (delivery,) = events.deliveries(repaid.id)
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        CANCELLED,
        1,
        "retracted: a reorg removed the block of its fact",
    )
    assert [a.error for a in events.attempts[delivery.id]] == ["no answer within 0.3 s"]
    gone = events.event(repaid.id)
    assert gone is not None
    assert gone.retracted_by is not None


async def test_a_stream_waits_for_its_send_in_flight_even_once_a_retraction_cancelled_it() -> None:
    """A cancelled delivery no longer holds its stream back in the outbox, so the loan's next event went out while
    the retracted one was still in flight, and the lender got them out of order (2 before 1). The relay now holds
    a stream back while it has a send of it in flight: 1, then 2, then the retraction of 1."""
    got: list[tuple[int, str]] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["sequence"] == 1:
            await asyncio.sleep(0.2)  # a slow but successful receiver (within the timeout)
        got.append((body["sequence"], body["type"]))
        return httpx.Response(204)

    events = InMemoryOutbox([LOAN])
    relay = await _relay_to(events, handle)
    first, _ = outbox.write(events, LOAN, event_type=outbox.LOAN_REPAYMENT, payload={}, key="0x01:1")
    try:
        assert await relay.round() == 1  # the first repayment in flight
        retract(events, first, None)  # cancelled: no attempt counted yet, nobody told
        outbox.write(events, LOAN, event_type=outbox.LOAN_REPAYMENT, payload={}, key="0x09:1")
        assert await relay.round() == 0  # the second waits behind the send in flight
        for _ in range(3):
            await _round(relay)
    finally:
        await relay.http.aclose()
    assert got == [(1, "loan.repayment"), (2, "loan.repayment"), (3, "loan.event_retracted")]


async def test_a_send_that_failed_while_its_event_was_retracted_leaves_no_signing_timestamp_behind() -> None:
    """The relay remembers a pending delivery's last signing second (its next attempt signs a later one); a delivery
    cancelled while its failing send was in flight is never sent again, and its entry is dropped (it stayed for the
    life of the process)."""
    events = InMemoryOutbox([LOAN])
    repaid, _ = outbox.write(events, LOAN, event_type=outbox.LOAN_REPAYMENT, payload={}, key="0x03:1")
    store = InMemoryRelayStore(events)
    receivers = Receivers()
    receivers.down.add("https://bank.test/events")
    relay = await _relay(store, receivers)
    try:
        relay._dispatch()
        (failing,) = relay._due(10)
        await relay._send(failing)
        assert set(relay._signed_at) == {failing.delivery_id}  # pending: its next attempt signs a later second
        retract(events, repaid, None)
        await relay._send(failing)  # it was on its way again when the event was retracted, and failed
    finally:
        await relay.http.aclose()
    assert [d.status for d in events.deliveries(repaid.id)] == [CANCELLED]
    assert relay._signed_at == {}


async def test_a_relay_whose_lease_moved_on_records_nothing() -> None:
    events = InMemoryOutbox([LOAN])
    outbox.write(events, LOAN, event_type=outbox.LOAN_OPENED, payload={}, key="opened")
    store = InMemoryRelayStore(events)
    relay = await _relay(store, Receivers())
    try:
        assert relay.lease is not None
        store.leases.held.clear()  # expired and taken by another holder, say
        with pytest.raises(LeaseLost):
            await relay.round()
    finally:
        await relay.http.aclose()
    assert all(e.dispatched_at is None for e in events.events_by_id.values())


def test_a_loan_whose_opening_a_reorg_removed_has_its_past_due_notices_retracted_too() -> None:
    events = InMemoryOutbox([LOAN])
    opened, _ = outbox.write(events, LOAN, event_type=outbox.LOAN_OPENED, payload={}, key="opened")
    repaid, _ = outbox.write(events, LOAN, event_type=outbox.LOAN_REPAYMENT, payload={}, key="0x03:1")
    past_due, _ = outbox.write(events, LOAN, event_type=outbox.LOAN_PAST_DUE, payload={"bucket": "1-29"}, key="1-29")
    for event in (opened, repaid, past_due):
        _delivered(events, event.id, "provider:sim-bank")
    ledger = InMemoryLedger()
    ledger.save_loan(LoanState("loan-1", CHAIN.name, CHAIN.chain_id, CHAIN.aggregator, T0, onchain_loan_id=1))

    def removed(event: OutboxEvent) -> RemovedFact:
        return RemovedFact("loan-1", event.dedup_key, "0x" + "0e" * 32, 10, "0x" + "0b" * 32)

    # the repayment's block goes, the loan stands: its past-due notice is the clock's and stands with it
    assert retract_unbacked(events, ledger, CHAIN, [removed(repaid)]) == [repaid.id]
    # the opening's block goes, and the loan's record with it: nothing it was told of stands
    ledger.delete_loan("loan-1")
    assert retract_unbacked(events, ledger, CHAIN, [removed(opened)]) == [opened.id, past_due.id]
    taken_back = [
        e.body["data"]["retracted_event_id"]
        for e in events.events("loan-1")
        if e.event_type == outbox.LOAN_EVENT_RETRACTED
    ]
    assert taken_back == [repaid.id, opened.id, past_due.id]
    notice = events.event(past_due.id)
    assert notice is not None
    assert notice.retracted_by is not None


def test_recipients_are_the_funding_provider_and_a_borrower_with_a_webhook_url() -> None:
    """A deregistered provider (``off-bank``, no longer quoting) still services its loans and is told about them."""
    registered = ProviderWebhook("reg-bank", "https://reg.test/e", True, {"secret": "reg-secret"})
    disabled = ProviderWebhook("off-bank", "https://off.test/e", False, {"secret": "x"})
    directory = InMemoryRecipients([registered, disabled], [_borrower_webhook("https://b1.test/hook")])
    destinations = EventDestinations(BOX, {"sim-bank": Destination("https://bank.test/events", "bank-secret")})
    events = InMemoryOutbox()

    def recipients(provider_id: str | None, borrower_id: str | None) -> list[str]:
        loan = EventLoan(f"loan-{provider_id}-{borrower_id}", provider_id, borrower_id, {"loan_id": "x"})
        event, _ = outbox.write(events, loan, event_type=outbox.LOAN_OPENED, payload={})
        return destinations.recipients(directory, event)

    assert recipients("sim-bank", "b1") == ["provider:sim-bank", "borrower:b1"]
    assert recipients("reg-bank", "b2") == ["provider:reg-bank"]
    assert recipients("off-bank", None) == ["provider:off-bank"]
    assert destinations.resolve(directory, "provider:reg-bank") == Destination("https://reg.test/e", "reg-secret")
    assert destinations.resolve(directory, "borrower:b1") == Destination("https://b1.test/hook", "borrower-secret")
    assert destinations.resolve(directory, "provider:off-bank") == Destination("https://off.test/e", "x")
    assert destinations.resolve(directory, "borrower:b2") is None
