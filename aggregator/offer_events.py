"""A lender's word about one of its offers (Provider Quote Protocol webhooks), acted on in the transaction that stores
the event (``providers.webhooks``), so that it holds in every process:

* ``offer.withdrawn`` — each quote of the offer still ``offered``, or ``superseded`` by an accept of another quote of
  its credit request, becomes ``withdrawn``: accepting it is refused (409 ``quote-withdrawn``), and it is not offered
  again when that other accept is cancelled. A quote being accepted or accepted is left to the accept saga, which
  follows the lender's answers: a lender that withdrew its offer refuses the reservation (the accept is cancelled,
  and the quote then goes to ``withdrawn``, not back to ``offered``: ``AcceptRepository.release``) or the funding
  instruction (``fund-refused``, as any refusal); a loan it funded is the lender's to service. Logged.

* ``offer.funding_failed`` — an accept of the offer waiting on the lender's funding (``recorded``: its loan open
  on-chain, the lender not yet funded it) ends as the saga ends a refused funding instruction: ``fund-refused`` with
  the lender's words, logged as an error for an operator, never sent to fund again, and the borrower's accept answers
  409 ``funding-failed``. It is a compare-and-set on the accept record, as the saga's own settlement of the lender's
  answer to ``/fund`` is (``AcceptRecords.settle_funding``): whichever of the two comes first stands, the other is
  logged, so a repeat (a new ``event_id``) or a race with the saga changes nothing. An accept whose loan is not open
  yet (its transaction on its way) is answered 503: the event is not stored, and the lender's retry finds the loan
  recorded or the accept cancelled. Any other offer's failure is stored and logged, with no effect.

Both find the offer's quotes by the lender's reference (``providerRef`` in the quote's offer), as ``payment.received``
finds its loan."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aggregator.accept_saga import REPORTED_FUNDING_FAILURE, TRADITIONAL, WITHDRAWN, AcceptStep
from providers._exceptions import WebhookRejected
from providers.webhooks import OFFER_FUNDING_FAILED, OFFER_WITHDRAWN, WebhookEvent

log = logging.getLogger(__name__)

#: the steps of an accept whose loan may still be opened: a failed funding of it is answered "send again later"
UNDER_WAY = frozenset(AcceptStep) - {AcceptStep.RECORDED, AcceptStep.FUNDED, AcceptStep.CANCELLED, AcceptStep.FAILED}
#: seconds after which a lender should send again an event about an accept that is under way (the 503's Retry-After)
UNDER_WAY_RETRY_SECONDS = 5


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

    def fail_funding(self, quote_id: str, error: str, now: datetime) -> bool:
        """The quote's accept at ``recorded``, a traditional loan whose funding is not settled (neither ``funded``
        nor ``fund-refused``), → ``fund-refused`` with ``error`` (compare-and-set, not fenced on the accept's owner);
        whether it moved."""
        ...


def act(repository: OfferEventRepository, provider_id: str, event: WebhookEvent, now: datetime) -> str | None:
    """What ``event`` does (the module's docstring): ``withdrawn``, ``funding-failed`` or ``none`` for the two offer
    events it acts on, None for any other type.

    Raises:
        WebhookRejected: 503 for a failed funding of an accept that is under way (send the event again).
    """
    if event.type == OFFER_WITHDRAWN:
        return _withdrawn(repository, provider_id, event)
    if event.type == OFFER_FUNDING_FAILED:
        return _funding_failed(repository, provider_id, event, now)
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


def _funding_failed(repository: OfferEventRepository, provider_id: str, event: WebhookEvent, now: datetime) -> str:
    quotes = repository.offer_quotes(provider_id, event.offer_ref)
    if any(q.kind == TRADITIONAL and q.step in UNDER_WAY for q in quotes):
        raise WebhookRejected(
            f"the accept of offer {event.offer_ref} is under way (its loan not yet open on-chain): send the event "
            f"again in {UNDER_WAY_RETRY_SECONDS} s",
            503,
        )
    error = f"{provider_id} {REPORTED_FUNDING_FAILURE} ({event.event_id}): {event.detail or 'no detail given'}"
    failed = [q for q in quotes if q.kind == TRADITIONAL and repository.fail_funding(q.id, error, now)]
    for quote in failed:
        log.error("accept %s: loan %s opened on-chain, and %s", quote.id, quote.loan_id, error)
    if not failed:
        states = ", ".join(f"quote {q.id} {q.status} ({q.step}, {q.lender_state})" for q in quotes) or "no quote"
        log.warning(
            "%s reported offer %s's funding failed (%s), and no accept waits on its funding: %s",
            provider_id,
            event.offer_ref,
            event.event_id,
            states,
        )
    return "funding-failed" if failed else "none"
