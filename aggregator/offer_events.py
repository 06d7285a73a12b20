"""A lender's word about one of its offers (Provider Quote Protocol webhooks), acted on in the transaction that stores
the event (``providers.webhooks``), so that it holds in every process:

* ``offer.withdrawn`` — each quote of the offer still ``offered``, or ``superseded`` by an accept of another quote of
  its credit request, becomes ``withdrawn``: accepting it is refused (409 ``quote-withdrawn``), and it is not offered
  again when that other accept is cancelled. A quote being accepted or accepted is left to the accept saga, which
  follows the lender's answers: a lender that withdrew its offer refuses the reservation (the accept is cancelled,
  and the quote then goes to ``withdrawn``, not back to ``offered``: ``AcceptRepository.release``) or the funding
  instruction (``fund-refused``, as any refusal); a loan it funded is the lender's to service. Logged.

It finds the offer's quotes by the lender's reference (``providerRef`` in the quote's offer), as ``payment.received``
finds its loan."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aggregator.accept_saga import WITHDRAWN, AcceptStep
from providers.webhooks import OFFER_WITHDRAWN, WebhookEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OfferQuote:
    """A quote of the offer, with its accept (if any) as it stands."""

    id: str
    status: str
    kind: str
    step: AcceptStep | None = None
    lender_state: str | None = None
    loan_id: str | None = None


class OfferEventRepository(Protocol):
    """The quotes and accepts an offer event touches, inside the unit of work that stores the event."""

    def offer_quotes(self, provider_id: str, offer_ref: str) -> list[OfferQuote]:
        """The quotes of ``provider_id``'s offer ``offer_ref``, each row locked until the unit of work ends (so an
        accept's lock or release of one waits for the event, and reads it)."""
        ...

    def withdraw(self, quote_id: str) -> bool:
        """The quote ``offered`` or ``superseded`` → ``withdrawn`` (compare-and-set); whether it moved."""
        ...


def act(repository: OfferEventRepository, provider_id: str, event: WebhookEvent, now: datetime) -> str | None:
    """What ``event`` does (the module's docstring): ``withdrawn`` or ``none`` for an offer's withdrawal, None for
    any other type."""
    if event.type == OFFER_WITHDRAWN:
        return _withdrawn(repository, provider_id, event)
    return None


def _withdrawn(repository: OfferEventRepository, provider_id: str, event: WebhookEvent) -> str:
    quotes = repository.offer_quotes(provider_id, event.offer_ref)
    withdrawn = [quote.id for quote in quotes if repository.withdraw(quote.id)]
    for quote in quotes:
        if quote.id not in withdrawn and quote.status != WITHDRAWN:
            log.warning(
                "%s withdrew offer %s (%s) while quote %s is %s: the accept follows the lender's answers to it",
                provider_id,
                event.offer_ref,
                event.event_id,
                quote.id,
                quote.status,
            )
    if not quotes:
        log.warning("%s withdrew offer %s (%s): no quote of ours has it", provider_id, event.offer_ref, event.event_id)
    elif withdrawn:
        log.info(
            "%s withdrew offer %s (%s): quotes %s withdrawn", provider_id, event.offer_ref, event.event_id, withdrawn
        )
    return "withdrawn" if withdrawn else "none"
