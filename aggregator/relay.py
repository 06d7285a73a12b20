"""The outbox relay: delivers loan events to their recipients' webhooks, at least once, in order per loan.

One relay runs per deployment across processes, under the lease ``outbox_relay`` (``store.leases``; chain id 0).
Each round it (1) *dispatches* new events: resolves their recipients (``aggregator.event_destinations``) into
delivery rows, and (2) sends every delivery that is due and heads its stream — the (loan, recipient) pair: a
loan's later event waits until its earlier one reached that recipient, while other loans and other recipients go
on (a round's batch holds at most ``per_recipient`` of each recipient's heads, so a lender with thousands of
overdue loans leaves room for everyone else). A send is a signed POST (HMAC-SHA256 over ``"{timestamp}.{body}"``
with the recipient's secret, as the Provider Quote Protocol signs its messages) through the SSRF guard, tried a
few times at once (tenacity, exponential backoff with jitter); when those fail the delivery is due again after a
backoff that doubles per round up to ``max_backoff``, forever — an event is never dropped. Every attempt is logged
(``outbox_attempts``, the newest ``ATTEMPT_LOG_ROWS`` of each delivery) and the delivery row keeps the count of its
attempts, last status and error.
Every write checks the lease's fencing token.

A process killed between a ledger change and its delivery loses nothing: the event was committed with the change,
and the next holder of the lease (this process restarted, or another) sends it. A receiver may therefore see an
event twice (it was delivered but the answer was lost): it deduplicates on ``event_id``. A delivery cancelled because
a reorg retracted its event (``aggregator.retraction``) is not sent; one that was in flight then is settled when
its send ends — delivered, or cancelled with its attempts logged — and when it arrived or may have (an answer that
came after the timeout), its recipient gets the ``loan.event_retracted`` too. Until then it still holds its stream
back: the loan's next event to that recipient is not sent while it is in flight.

The relay works on plain values through a ``RelayStore`` (``store.relay.SqlRelayStore``: the outbox, the
recipients' webhook settings and the lease's fence in one transaction per step); what it decides — which sends start
(``pick``), the backoff, a delivery's state after a send (``settle``) — is pure.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import httpx
import rfc8785
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from aggregator.event_destinations import Destination, EventDestinations, RecipientDirectory
from aggregator.outbox import (
    CANCELLED,
    DELIVERED,
    NO_DESTINATION,
    PENDING,
    Attempt,
    Delivery,
    OutboxEvent,
    OutboxStore,
)
from aggregator.retraction import RETRACTED, compensate
from aggregator.servicing.leased import OUTAGES, Leader, run_leased
from providers._exceptions import ProviderError
from providers.signing import signed_headers
from store.leases import Lease, LeaseLost, LeaseStore

log = logging.getLogger(__name__)

LEASE_KIND = "outbox_relay"
DEPLOYMENT = 0  # the relay's lease is one per deployment, not per chain
EVENT_ID_HEADER = "X-Creditmesh-Event-Id"
EVENT_TYPE_HEADER = "X-Creditmesh-Event-Type"
SEQUENCE_HEADER = "X-Creditmesh-Sequence"
#: how much of a receiver's answer is read: its status is the answer; a longer body is left unread (the connection
#: dropped), so an endless or huge answer costs the relay neither memory nor its time
ANSWER_BYTES = 64 * 1024
#: a send whose outcome cannot be written (the lease moved, the database is out of reach) stays pending
NOT_RECORDED: tuple[type[Exception], ...] = (LeaseLost, *OUTAGES)


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """``ttl``: the lease's time to live; ``interval``: the pause between rounds; ``concurrency``: sends in flight,
    at most ``per_recipient`` of them to one recipient; ``tries``: quick tries per round
    (the first ``first_wait`` seconds apart, doubling); ``first_backoff``/``max_backoff``: the pause before the next
    round of a delivery that failed (doubling per round); ``timeout``: per HTTP attempt, from the connection to the
    answer's status and the first ``ANSWER_BYTES`` of its body, however slowly a receiver trickles them."""

    ttl: timedelta = timedelta(seconds=15)
    interval: float = 1.0
    batch: int = 200
    concurrency: int = 16
    per_recipient: int = 4  # sends in flight to one recipient: a slow receiver cannot take every slot
    tries: int = 3
    first_wait: float = 0.2
    first_backoff: float = 2.0
    max_backoff: float = 300.0
    timeout: float = 5.0


class DeliveryFailed(Exception):
    """One attempt did not get a 2xx answer."""

    def __init__(self, detail: str, status_code: int | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class _Send:
    delivery_id: int
    recipient: str
    loan_id: str
    event_id: str
    event_type: str
    sequence: int
    body: bytes
    destination: Destination | None


class RelayUnitOfWork(Protocol):
    """One transaction of the relay: the outbox, the recipients' webhook settings, and the lease's fence."""

    @property
    def outbox(self) -> OutboxStore: ...

    @property
    def recipients(self) -> RecipientDirectory: ...

    def fence(self, lease: Lease) -> None:
        """Raise ``LeaseLost`` unless ``lease`` still holds, checked in this transaction: its writes are the
        holder's."""
        ...

    def commit(self) -> None: ...


class RelayStore(Protocol):
    """Opens the relay's units of work (leaving one without ``commit`` rolls back) and holds its lease
    (``store.relay.SqlRelayStore`` on the database)."""

    @property
    def leases(self) -> LeaseStore: ...

    def unit_of_work(self) -> AbstractContextManager[RelayUnitOfWork]: ...


def default_holder() -> str:
    """This process's name for the lease: host, pid and a random part (a restarted pid is another holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _ToRecipient(Protocol):
    @property
    def recipient(self) -> str: ...


_S = TypeVar("_S", bound=_ToRecipient)


def pick(due: Iterable[_S], busy: Mapping[str, int], room: int, per_recipient: int) -> list[_S]:
    """The sends to start now, in the order ``due`` gives them: at most ``room``, and no recipient above
    ``per_recipient`` counting the ``busy`` sends already in flight to it."""
    counts: Counter[str] = Counter(busy)
    chosen: list[_S] = []
    for send in due:
        if len(chosen) >= room:
            break
        if counts[send.recipient] < per_recipient:
            counts[send.recipient] += 1
            chosen.append(send)
    return chosen


def backoff(settings: RelaySettings, rounds: int) -> float:
    """Seconds before round ``rounds + 1`` of a delivery whose ``rounds`` rounds failed."""
    return float(min(settings.max_backoff, settings.first_backoff * 2.0 ** max(0, rounds - 1)))


class OutboxRelay:
    def __init__(
        self,
        store: RelayStore,
        destinations: EventDestinations,
        http: httpx.AsyncClient,
        *,
        settings: RelaySettings = RelaySettings(),
        leases: LeaseStore | None = None,
        holder: str | None = None,
    ) -> None:
        self.store, self.destinations, self.http, self.settings = store, destinations, http, settings
        self.leases: LeaseStore = leases or store.leases
        self.holder = holder or default_holder()
        self.lease: Lease | None = None
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._stream_of: dict[int, tuple[str, str]] = {}  # in-flight delivery id → its (loan, recipient) stream
        self._signed_at: dict[int, int] = {}  # delivery id → its last attempt's signing timestamp

    # ------------------------------------------------------------------ the lease

    async def run(self, stop: asyncio.Event) -> None:
        """Relay while holding the lease, wait for it otherwise, until ``stop`` is set; released at the end. An
        outage of the database ends no relay (``aggregator.servicing.leased``)."""
        try:
            await run_leased(
                LEASE_KIND,
                DEPLOYMENT,
                self.leases,
                self.holder,
                self.settings.ttl,
                self.settings.interval,
                self._round,
                stop,
                label="outbox relay",
                stepped_down=self._step_down,
            )
        finally:
            await self._step_down()

    async def _round(self, leader: Leader) -> None:
        self.lease = leader.lease  # its token fences every write of the round (a renewal keeps the token)
        await self.round()

    async def _step_down(self) -> None:
        await self._drain()
        self.lease = None

    def _fence(self, uow: RelayUnitOfWork) -> None:
        if self.lease is None:
            raise LeaseLost(LEASE_KIND, DEPLOYMENT, "not held")
        uow.fence(self.lease)

    async def _drain(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()
        self._stream_of.clear()

    # ------------------------------------------------------------------ one round

    async def round(self) -> int:
        """Dispatch new events, then start sending what is due (not waiting for the sends); how many started."""
        await asyncio.to_thread(self._dispatch)
        room = self.settings.concurrency - len(self._inflight)
        if room <= 0:
            return 0
        # a send that finishes while the query runs was in flight when it started: its row may still read pending
        inflight = set(self._inflight)
        due = await asyncio.to_thread(self._due, self.settings.batch)
        # nor one of a stream with a send in flight: its head, cancelled by a retraction meanwhile, no longer holds
        # the stream back in the database, but it may still arrive, and what follows must arrive after it
        streams = set(self._stream_of.values())
        fresh = [
            s
            for s in due
            if s.delivery_id not in inflight
            and s.delivery_id not in self._inflight
            and (s.loan_id, s.recipient) not in streams
        ]
        busy = Counter(recipient for _, recipient in self._stream_of.values())
        sends = pick(fresh, busy, room, self.settings.per_recipient)
        for send in sends:
            task = asyncio.create_task(self._send(send), name=f"outbox-delivery-{send.delivery_id}")
            self._inflight[send.delivery_id] = task
            self._stream_of[send.delivery_id] = (send.loan_id, send.recipient)
            task.add_done_callback(self._done)
        return len(sends)

    def _done(self, task: asyncio.Task[None]) -> None:
        for key, running in list(self._inflight.items()):
            if running is task:
                del self._inflight[key]
                self._stream_of.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("outbox relay: a delivery failed unexpectedly", exc_info=task.exception())

    def _dispatch(self) -> None:
        with self.store.unit_of_work() as uow:
            self._fence(uow)
            now = datetime.now(UTC)
            events = uow.outbox.undispatched(self.settings.batch)
            pending = [
                (event.id, recipient)
                for event in events
                for recipient in self.destinations.recipients(uow.recipients, event)
            ]
            uow.outbox.add_deliveries(pending, now)
            for event in events:
                uow.outbox.update_event(replace(event, dispatched_at=now))
            if events:
                uow.commit()

    def _due(self, limit: int) -> list[_Send]:
        with self.store.unit_of_work() as uow:
            now = datetime.now(UTC)
            sends = []
            held: dict[str, tuple[str, list[Delivery]]] = {}  # recipient → why, and its deliveries held
            withdrawn: list[tuple[OutboxEvent, Delivery]] = []
            # a recipient's share only: one that cannot take more than per_recipient sends at once never fills
            # the batch and leaves every other recipient out of it
            for delivery in uow.outbox.due(now, limit, self.settings.per_recipient):
                event = uow.outbox.event(delivery.event_id)
                if event is None:
                    continue
                if event.retracted_at is not None:  # made after its retraction looked (a race): never sent now
                    withdrawn.append((event, delivery))
                    continue
                try:
                    destination = self.destinations.resolve(uow.recipients, delivery.recipient)
                except ProviderError as err:  # its secret does not open (or it has none): held, not sent
                    held.setdefault(delivery.recipient, (str(err), []))[1].append(delivery)
                    continue
                sends.append(
                    _Send(
                        delivery.id,
                        delivery.recipient,
                        delivery.loan_id,
                        event.id,
                        event.event_type,
                        event.sequence,
                        bytes(rfc8785.dumps(event.body)),
                        destination,
                    )
                )
            if held or withdrawn:
                self._fence(uow)
                self._hold(uow, held, now)
                self._withdraw(uow, withdrawn)
                uow.commit()
            return sends

    def _hold(self, uow: RelayUnitOfWork, held: Mapping[str, tuple[str, list[Delivery]]], now: datetime) -> None:
        """Put deliveries that cannot be signed (their recipient's secret does not open, or it has none) back by
        ``max_backoff``, with the reason as their last error (``GET /v1/loans/{id}/events`` shows it): left at the
        head of the due query they would come back every round and, with enough of them, take every batch. Still
        pending: sent once the secret is put right. Said once per recipient and hold, not every round."""
        until = now + timedelta(seconds=self.settings.max_backoff)
        for recipient, (reason, deliveries) in held.items():
            error = f"held: {reason}"[:512]
            for delivery in deliveries:
                uow.outbox.update_delivery(replace(delivery, next_attempt_at=until, last_error=error))
            log.error(
                "outbox relay: %d deliveries to %s held for %.0f s: %s",
                len(deliveries),
                recipient,
                self.settings.max_backoff,
                reason,
            )

    def _withdraw(self, uow: RelayUnitOfWork, withdrawn: Sequence[tuple[OutboxEvent, Delivery]]) -> None:
        """Cancel pending deliveries of retracted events — made by a dispatch its retraction did not see — and take
        the event back from a recipient that may have had it (an attempt was made)."""
        for event, delivery in withdrawn:
            log.warning("outbox relay: delivery %s of retracted event %s cancelled", delivery.id, event.id)
            uow.outbox.update_delivery(replace(delivery, status=CANCELLED, last_error=RETRACTED))
            if delivery.attempts > 0:
                compensate(uow.outbox, event, [delivery.recipient])

    async def _send(self, send: _Send) -> None:
        attempts: list[Attempt] = []
        delivered = False
        if send.destination is not None:
            try:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self.settings.tries),
                    wait=wait_exponential_jitter(
                        multiplier=self.settings.first_wait,
                        max=self.settings.first_wait * 8,
                        jitter=self.settings.first_wait,
                    ),
                    retry=retry_if_exception_type(DeliveryFailed),
                    reraise=True,
                ):
                    with attempt:
                        await self._post(send, send.destination, attempts)
                delivered = True
            except DeliveryFailed:
                pass  # logged in attempts; due again after the round's backoff
        pending = True
        try:
            pending = await asyncio.to_thread(self._record, send, attempts, delivered)
        except NOT_RECORDED as err:  # still pending: sent again by this holder's next round or its successor's
            log.warning("outbox relay: delivery %s not recorded: %s", send.delivery_id, err)
        if not pending:  # delivered, cancelled, without a destination: never signed again
            self._signed_at.pop(send.delivery_id, None)

    async def _timestamp(self, delivery_id: int) -> int:
        """The signing timestamp of an attempt: a later second than the delivery's previous attempt, since the same
        body signed in the same second is the same signature, which a receiver refuses as a replay."""
        now, last = time.time(), self._signed_at.get(delivery_id, 0)
        if int(now) <= last:
            await asyncio.sleep(last + 1 - now)
        self._signed_at[delivery_id] = stamp = max(int(time.time()), last + 1)
        return stamp

    async def _post(self, send: _Send, destination: Destination, attempts: list[Attempt]) -> None:
        timestamp = await self._timestamp(send.delivery_id)
        headers = signed_headers(destination.secret, timestamp, send.body) | {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: send.event_id,
            EVENT_TYPE_HEADER: send.event_type,
            SEQUENCE_HEADER: str(send.sequence),
        }
        started, at = time.monotonic(), datetime.now(UTC)
        status_code: int | None = None
        try:
            try:
                async with asyncio.timeout(self.settings.timeout):  # the whole attempt, not each read
                    async with self.http.stream(
                        "POST", destination.url, content=send.body, headers=headers, timeout=self.settings.timeout
                    ) as response:
                        status_code = response.status_code
                        await _read_some(response, ANSWER_BYTES)
            except TimeoutError:
                if status_code is None:
                    raise DeliveryFailed(f"no answer within {self.settings.timeout:g} s") from None
                # the status came and the body did not end in time: the answer stands, the connection is dropped
            if not 200 <= status_code < 300:
                raise DeliveryFailed(f"HTTP {status_code}", status_code)
        except (httpx.HTTPError, ProviderError) as err:  # transport errors; the SSRF guard's refusal
            failure = DeliveryFailed(f"{type(err).__name__}: {err}"[:512])
            attempts.append(Attempt(at, None, str(failure), int((time.monotonic() - started) * 1000)))
            raise failure from err
        except DeliveryFailed as failed:
            attempts.append(Attempt(at, status_code, str(failed), int((time.monotonic() - started) * 1000)))
            raise
        attempts.append(Attempt(at, status_code, None, int((time.monotonic() - started) * 1000)))

    def _record(self, send: _Send, attempts: list[Attempt], delivered: bool) -> bool:
        """Log the send's attempts and settle its delivery; whether it is still pending (to be sent again).

        A send whose event was retracted while it was in flight (its delivery cancelled, or made after the
        retraction looked) is settled here: delivered, or cancelled with its attempts counted; and when it arrived
        or may have — any attempt was made: an answer after the timeout or lost on the way still stored the event —
        its recipient gets the ``loan.event_retracted`` too."""
        with self.store.unit_of_work() as uow:
            self._fence(uow)
            now = datetime.now(UTC)
            delivery = uow.outbox.delivery(send.delivery_id)
            if delivery is None:
                return False
            event = uow.outbox.event(delivery.event_id)
            stray = delivery.status == PENDING and event is not None and event.retracted_at is not None
            withdrawn = delivery.status == CANCELLED or stray
            if delivery.status != PENDING and not withdrawn:
                return False
            uow.outbox.add_attempts(delivery.id, attempts)
            settled = settle(delivery, send.destination, attempts, delivered, now, self.settings)
            if withdrawn and not delivered:
                settled = replace(settled, status=CANCELLED, next_attempt_at=delivery.next_attempt_at)
                settled = replace(settled, last_error=RETRACTED)
            uow.outbox.update_delivery(settled)
            if withdrawn and (delivered or attempts):
                assert event is not None
                compensate(uow.outbox, event, [delivery.recipient])
            elif settled.status == PENDING:
                log.info(
                    "outbox relay: %s of event %s to %s failed (%s); next round in %.1f s",
                    send.event_type,
                    send.event_id,
                    send.recipient,
                    settled.last_error,
                    (settled.next_attempt_at - now).total_seconds(),
                )
            uow.commit()
            return settled.status == PENDING


def settle(
    delivery: Delivery,
    destination: Destination | None,
    attempts: Sequence[Attempt],
    delivered: bool,
    now: datetime,
    settings: RelaySettings,
) -> Delivery:
    """The delivery after a send's ``attempts``: delivered; ``no_destination`` when its recipient has no webhook URL
    any more; else still pending, due again after the backoff of its failed rounds."""
    changes: dict[str, Any] = {"attempts": delivery.attempts + len(attempts)}
    if destination is not None:
        changes["url"] = destination.url
    if attempts:
        changes["last_status_code"], changes["last_error"] = attempts[-1].status_code, attempts[-1].error
    if destination is None:
        changes["status"], changes["last_error"] = NO_DESTINATION, "the recipient has no webhook URL any more"
    elif delivered:
        changes["status"], changes["delivered_at"] = DELIVERED, now
    else:
        rounds = -(-changes["attempts"] // settings.tries)
        changes["next_attempt_at"] = now + timedelta(seconds=backoff(settings, rounds))
    return replace(delivery, **changes)


async def _read_some(response: httpx.Response, limit: int) -> None:
    """Read the answer's body up to ``limit`` bytes (all of a short one, so its connection can be reused); raw, so
    a compressed answer is not inflated."""
    if response.is_stream_consumed:  # a transport that hands over answers already read (httpx.MockTransport)
        return
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read > limit:
            return
