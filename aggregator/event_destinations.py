"""Who receives a loan's events, and where: the provider that funded it (its ``webhook_url``, from its registration
through the API or from ``CREDITMESH_HTTP_LENDERS``, signed with its HMAC secret) and the borrower, if it set a
webhook URL (signed with the secret it was given then). A recipient is named ``provider:<id>`` or
``borrower:<id>``; its URL and secret are read when an event is sent, so a changed URL or secret applies to what is
still pending."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from providers._exceptions import InvalidRegistration
from providers.secrets import SecretBox
from store.api import BorrowerRow
from store.outbox import OutboxEventRow
from store.providers import ProviderRegistrationRow

PROVIDER, BORROWER = "provider", "borrower"


@dataclass(frozen=True, slots=True)
class Destination:
    """A webhook URL and the HMAC secret its messages are signed with."""

    url: str
    secret: str


class EventDestinations(Protocol):
    def recipients(self, session: Session, event: OutboxEventRow) -> list[str]:
        """The recipients of ``event`` that have a webhook URL now."""
        ...

    def resolve(self, session: Session, recipient: str) -> Destination | None:
        """Where ``recipient``'s events go now; None when it has no webhook URL (any more)."""
        ...


def borrower_secret_subject(borrower_id: str) -> str:
    return f"borrower/{borrower_id}/webhook"


class SqlEventDestinations:
    """Destinations from the store (registrations, borrowers) and the configured lenders (``configured``: provider
    id → destination, from the settings)."""

    def __init__(self, secrets: SecretBox, configured: Mapping[str, Destination] | None = None) -> None:
        self.secrets = secrets
        self.configured = dict(configured or {})

    def recipients(self, session: Session, event: OutboxEventRow) -> list[str]:
        found = []
        if event.provider_id is not None:
            registration = session.get(ProviderRegistrationRow, event.provider_id)
            if event.provider_id in self.configured or _enabled_with_url(registration):
                found.append(f"{PROVIDER}:{event.provider_id}")
        if event.borrower_id is not None:
            borrower = session.get(BorrowerRow, event.borrower_id)
            if borrower is not None and borrower.webhook_url:
                found.append(f"{BORROWER}:{event.borrower_id}")
        return found

    def resolve(self, session: Session, recipient: str) -> Destination | None:
        """Raises ``InvalidRegistration`` when the recipient's secret does not open (a changed master key)."""
        kind, _, subject = recipient.partition(":")
        if kind == PROVIDER:
            if subject in self.configured:
                return self.configured[subject]
            registration = session.get(ProviderRegistrationRow, subject)
            if registration is None or not _enabled_with_url(registration):
                return None
            assert registration.webhook_url is not None
            secret = self.secrets.open_config(registration.provider_id, registration.config).get("secret")
            if not isinstance(secret, str):
                raise InvalidRegistration(f"{subject}: no HMAC secret to sign its loan events with")
            return Destination(registration.webhook_url, secret)
        if kind == BORROWER:
            borrower = session.get(BorrowerRow, subject)
            if borrower is None or not borrower.webhook_url or not borrower.webhook_secret_sealed:
                return None
            sealed = base64.b64decode(borrower.webhook_secret_sealed)
            return Destination(borrower.webhook_url, self.secrets.open(borrower_secret_subject(subject), sealed))
        return None


def _enabled_with_url(registration: ProviderRegistrationRow | None) -> bool:
    return registration is not None and registration.enabled and bool(registration.webhook_url)
