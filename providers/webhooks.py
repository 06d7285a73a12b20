"""Webhooks from HTTP lenders (Provider Quote Protocol v1, ``POST /v1/providers/{provider_id}/webhooks``): signed
like our requests to them (HMAC-SHA256 over ``"{timestamp}.{body}"`` with the provider's secret). A missing, wrong
or stale signature, a replay (the same signature in this process, or the same ``event_id`` in any process: the
store's unique key), or a body that is not the schema is refused; the reason is persisted as a provider incident
and counted as that provider's failure."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import IntegrityError

from providers._exceptions import UnknownProvider, WebhookRejected
from providers.models import FundingState
from providers.signing import ReplayGuard, SignatureRejected
from store.providers import ProviderRepository, ProviderWebhookEventRow

if TYPE_CHECKING:
    from providers.registry import ProviderRegistry
    from store.db import Database

EventType = Literal["offer.status_changed", "offer.withdrawn", "offer.funded", "offer.funding_failed"]


class WebhookEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protocol_version: Literal["1"]
    event_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    type: EventType
    offer_ref: str = Field(min_length=1, max_length=128)
    state: FundingState | None = None
    occurred_at: datetime
    detail: str = Field(default="", max_length=1_000)


async def receive_webhook(
    registry: ProviderRegistry,
    database: Database,
    provider_id: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: int | None = None,
) -> WebhookEvent:
    provider = registry.get_provider(provider_id)
    guard = getattr(provider.inner, "webhook_guard", None)
    if not isinstance(guard, ReplayGuard):
        raise UnknownProvider(f"provider {provider_id!r} does not send webhooks")

    async def refuse(reason: str, status_code: int = 401) -> WebhookRejected:
        await registry.record_incident(provider_id, "webhook", reason)
        return WebhookRejected(reason, status_code)

    try:
        guard.verify(timestamp, signature, body, int(time.time()) if now is None else now)
    except SignatureRejected as err:
        raise await refuse(f"webhook refused: {err}") from err
    try:
        event = WebhookEvent.model_validate_json(body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise await refuse(f"webhook body violates the protocol: {where}: {first['msg']}", 422) from err

    def store() -> None:
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
            uow.commit()

    try:
        await asyncio.to_thread(store)
    except IntegrityError as err:
        raise await refuse(f"webhook refused: replayed event {event.event_id}", 409) from err
    return event
