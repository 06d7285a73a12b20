"""Who receives a loan's events, and where: the provider that funded it (its ``webhook_url``, from its registration
through the API or from ``CREDITMESH_HTTP_LENDERS``, signed with its HMAC secret) and the borrower, if it set a
webhook URL (signed with the secret it was given then). A recipient is named ``provider:<id>`` or
``borrower:<id>``; its URL and secret are read when an event is sent, so a changed URL or secret applies to what is
still pending.

The registrations and borrowers are read through a ``RecipientDirectory`` (``store.relay.SqlRecipientDirectory`` in
the relay's transaction; a dictionary in unit tests); ``EventDestinations`` decides from them and opens the secrets.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aggregator.outbox import OutboxEvent
from providers._exceptions import InvalidRegistration
from providers.secrets import SecretBox

PROVIDER, BORROWER = "provider", "borrower"


@dataclass(frozen=True, slots=True)
class Destination:
    """A webhook URL and the HMAC secret its messages are signed with."""

    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class ProviderWebhook:
    """A provider's registration as its loan events need it: its webhook URL, whether it is enabled, and its adapter
    configuration as stored (the HMAC secret sealed inside)."""

    provider_id: str
    url: str | None
    enabled: bool
    config: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class BorrowerWebhook:
    """A borrower's webhook URL and its secret, sealed (base64) under the borrower's subject."""

    borrower_id: str
    url: str | None
    secret_sealed: str | None


class RecipientDirectory(Protocol):
    """The recipients' webhook settings (provider registrations, borrowers), read in the caller's transaction."""

    def provider(self, provider_id: str) -> ProviderWebhook | None: ...

    def borrower(self, borrower_id: str) -> BorrowerWebhook | None: ...


def borrower_secret_subject(borrower_id: str) -> str:
    return f"borrower/{borrower_id}/webhook"


class EventDestinations:
    """Destinations from the directory (registrations, borrowers) and the configured lenders (``configured``:
    provider id → destination, from the settings), the secrets opened with ``secrets``."""

    def __init__(self, secrets: SecretBox, configured: Mapping[str, Destination] | None = None) -> None:
        self.secrets = secrets
        self.configured = dict(configured or {})

    def recipients(self, directory: RecipientDirectory, event: OutboxEvent) -> list[str]:
        """The recipients of ``event`` that have a webhook URL now."""
        found = []
        provider = event.provider_id
        if provider is not None and (provider in self.configured or _receives(directory.provider(provider))):
            found.append(f"{PROVIDER}:{provider}")
        if event.borrower_id is not None:
            borrower = directory.borrower(event.borrower_id)
            if borrower is not None and borrower.url:
                found.append(f"{BORROWER}:{event.borrower_id}")
        return found

    def resolve(self, directory: RecipientDirectory, recipient: str) -> Destination | None:
        """Where ``recipient``'s events go now; None when it has no webhook URL (any more). Raises
        ``InvalidRegistration`` when the recipient's secret does not open (a changed master key)."""
        kind, _, subject = recipient.partition(":")
        if kind == PROVIDER:
            if subject in self.configured:
                return self.configured[subject]
            registration = directory.provider(subject)
            if registration is None or not registration.url:  # deregistered: its loans' events still its
                return None
            secret = self.secrets.open_config(registration.provider_id, registration.config).get("secret")
            if not isinstance(secret, str):
                raise InvalidRegistration(f"{subject}: no HMAC secret to sign its loan events with")
            return Destination(registration.url, secret)
        if kind == BORROWER:
            borrower = directory.borrower(subject)
            if borrower is None or not borrower.url or not borrower.secret_sealed:
                return None
            sealed = base64.b64decode(borrower.secret_sealed)
            return Destination(borrower.url, self.secrets.open(borrower_secret_subject(subject), sealed))
        return None


def _receives(registration: ProviderWebhook | None) -> bool:
    """Whether a provider gets its loans' events: a webhook URL is set. A deregistered provider (``enabled`` False)
    no longer quotes, but its loans are still serviced, and it is still told what happens to them."""
    return registration is not None and bool(registration.url)
