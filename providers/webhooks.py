"""Webhooks from HTTP lenders (Provider Quote Protocol v1, ``POST /v1/providers/{provider_id}/webhooks``): signed
like our requests to them (HMAC-SHA256 over ``"{timestamp}.{body}"`` with the provider's secret).

Anyone can post here, so nothing an unauthenticated request does counts against anyone: a missing, wrong or stale
signature or a replayed one is refused (401), logged, and counted only against its SOURCE (the client address) —
past ``RefusalLimits.per_window`` refusals in a window that source's refusals are answered 429 and no longer logged,
while what it sends is still verified, so a webhook that verifies is taken whatever its address's count. It is never
the lender's failure and writes no row. A body larger than ``MAX_WEBHOOK_BODY_BYTES`` is refused before the HMAC is
computed (the router reads at most that much). Only a correctly signed webhook is the lender's: one whose body is not
the schema is persisted as the provider's incident (still not a breaker failure: quoting is unaffected); the same
``event_id`` twice is refused by the store's unique key (409) — except ``payment.received``, whose effect is keyed by
the lender's payment reference (``aggregator.offchain_payments``), so a repeat is answered as the first was.

What an event does to our records (``offer.withdrawn`` and ``offer.funding_failed``: ``aggregator.offer_events``) is
the caller's ``effect``, run in the transaction that stores the event: an event is stored exactly when it took
effect, in every process, and one whose effect refuses it for now (``WebhookRejected``) is not stored, so the
lender's retry is a new event."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.exc import IntegrityError

from providers._exceptions import UnknownProvider, WebhookRejected
from providers.models import FundingState
from providers.signing import ReplayGuard, SignatureRejected
from store.providers import ProviderRepository, ProviderWebhookEventRow

if TYPE_CHECKING:
    import redis.asyncio
    from sqlalchemy.orm import Session

    from providers.registry import ProviderRegistry
    from store.db import Database

log = logging.getLogger(__name__)

EventType = Literal[
    "offer.status_changed", "offer.withdrawn", "offer.funded", "offer.funding_failed", "payment.received"
]
PAYMENT_RECEIVED = "payment.received"
OFFER_WITHDRAWN = "offer.withdrawn"
OFFER_FUNDING_FAILED = "offer.funding_failed"
#: a decimal amount in the asset's units, ASCII digits (as the API's amounts)
AMOUNT_PATTERN = r"^[0-9]{1,30}(\.[0-9]{1,30})?$"
#: the largest webhook body read (events are a few hundred bytes)
MAX_WEBHOOK_BODY_BYTES = 64 * 1024


class WebhookEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protocol_version: Literal["1"]
    event_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    type: EventType
    offer_ref: str = Field(min_length=1, max_length=128)
    state: FundingState | None = None
    occurred_at: datetime
    detail: str = Field(default="", max_length=1_000)
    # payment.received: the lender's own reference of the payment and the amount in the loan asset's units
    payment_ref: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:/-]+$")
    amount: str | None = Field(default=None, pattern=AMOUNT_PATTERN)
    #: payment.received: the lender's books show the loan paid in full with this payment (a payoff)
    paid_in_full: bool = False

    @model_validator(mode="after")
    def _payment_fields(self) -> WebhookEvent:
        if self.type == PAYMENT_RECEIVED and (self.payment_ref is None or self.amount is None):
            raise ValueError("payment.received needs payment_ref and amount")
        if self.paid_in_full and self.type != PAYMENT_RECEIVED:
            raise ValueError("paid_in_full belongs to payment.received")
        return self


#: what a verified event does to our records, given the session of the transaction that stores it: one word for the
#: answer (``withdrawn``, ``funding-failed``, ``none``), or None for an event that does nothing here
EventEffect = Callable[["Session", WebhookEvent], str | None]


@dataclass(frozen=True, slots=True)
class ReceivedWebhook:
    event: WebhookEvent
    effect: str | None = None


# ---------------------------------------------------------------------------------------------------- refusals


@dataclass(frozen=True, slots=True)
class RefusalLimits:
    per_window: int = 20
    window_seconds: int = 60


class RefusalLimiter(Protocol):
    """Counts refused unauthenticated requests per source in fixed windows; keys expire with their window."""

    limits: RefusalLimits

    async def refused(self, source: str, now: float) -> int:
        """Count one refusal of ``source``; return its refusals in the current window."""
        ...


class MemoryRefusalLimiter:
    """One process: at most ``capacity`` sources remembered (the oldest forgotten first)."""

    def __init__(self, limits: RefusalLimits | None = None, capacity: int = 10_000) -> None:
        self.limits = limits or RefusalLimits()
        self._capacity = capacity
        self._windows: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def _window(self, now: float) -> int:
        return int(now // self.limits.window_seconds)

    async def refused(self, source: str, now: float) -> int:
        current = self._window(now)
        window, count = self._windows.pop(source, (current, 0))
        count = count + 1 if window == current else 1
        self._windows[source] = (current, count)
        while len(self._windows) > self._capacity:
            self._windows.popitem(last=False)
        return count


class RedisRefusalLimiter:
    """Across processes: ``INCR`` a key per source and window, expiring with the window."""

    def __init__(
        self, client: redis.asyncio.Redis, limits: RefusalLimits | None = None, prefix: str = "creditmesh:webhook"
    ) -> None:
        self.limits = limits or RefusalLimits()
        self._client = client
        self._prefix = prefix

    def _key(self, source: str, now: float) -> str:
        return f"{self._prefix}:refused:{source}:{int(now // self.limits.window_seconds)}"

    async def refused(self, source: str, now: float) -> int:
        key = self._key(source, now)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self.limits.window_seconds * 2)
            count, _ = await pipe.execute()
        return int(count)


# ---------------------------------------------------------------------------------------------------- receiving


async def refuse_unauthenticated(
    limiter: RefusalLimiter, source: str, provider_id: str, reason: str, status_code: int = 401
) -> WebhookRejected:
    """Log and count a refusal against its source, never against the provider; the error to raise: ``status_code``,
    or 429 once the source had used up its refusals of the window before this one (then no longer logged). The
    lenders' and the KYC provider's routes both refuse through it, sharing one limiter."""
    count = await limiter.refused(source, time.time())
    if count <= limiter.limits.per_window:
        log.warning("webhook for %s from %s refused: %s", provider_id, source, reason)
    if count == limiter.limits.per_window:
        log.warning("webhook refusals from %s reached %d in a window: answered 429 for now", source, count)
    if count > limiter.limits.per_window:
        return WebhookRejected("too many refused webhooks from this address; try later", 429)
    return WebhookRejected(reason, status_code)


async def receive_webhook(
    registry: ProviderRegistry,
    database: Database,
    provider_id: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: int | None = None,
    source: str = "unknown",
    effect: EventEffect | None = None,
) -> ReceivedWebhook:
    limiter = registry.webhook_refusals
    provider = registry.get_provider(provider_id)
    guard = getattr(provider.inner, "webhook_guard", None)
    if not isinstance(guard, ReplayGuard):
        raise UnknownProvider(f"provider {provider_id!r} does not send webhooks")
    try:
        guard.verify(timestamp, signature, body, int(time.time()) if now is None else now)
    except SignatureRejected as err:
        # an address past its limit is still verified (an HMAC over at most 64 KiB): what verifies is taken, so
        # forgeries from an address a lender shares (a proxy not in CREDITMESH_TRUSTED_PROXIES, every "unknown"
        # client) never hold up its webhooks; its refusals are 429 and no longer logged
        raise await refuse_unauthenticated(limiter, source, provider_id, f"webhook refused: {err}") from err
    # signed with the provider's secret from here on: what is wrong now is the provider's own doing
    try:
        event = WebhookEvent.model_validate_json(body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        reason = f"webhook body violates the protocol: {where}: {first['msg']}"
        await registry.record_incident(provider_id, "webhook", reason)
        raise WebhookRejected(reason, 422) from err

    def store() -> str | None:
        with database.unit_of_work() as uow:
            ProviderRepository(uow.session).add(
                ProviderWebhookEventRow(
                    provider_id=provider_id,
                    event_id=event.event_id,
                    event_type=event.type,
                    offer_ref=event.offer_ref,
                    payload=event.model_dump(mode="json"),
                    received_at=datetime.now(UTC),
                )
            )
            uow.session.flush()  # a replayed event_id is refused here, before its effect
            done = None if effect is None else effect(uow.session, event)
            uow.commit()
            return done

    try:
        done = await asyncio.to_thread(store)
    except IntegrityError as err:
        if event.type == PAYMENT_RECEIVED:  # recorded once by its payment reference: the repeat is answered alike
            return ReceivedWebhook(event)
        raise WebhookRejected(f"webhook refused: replayed event {event.event_id}", 409) from err
    return ReceivedWebhook(event, done)
