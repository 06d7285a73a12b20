"""A traditional lender's two phases in the accept (``aggregator.accepting``), over the Provider Quote Protocol:
reserve the offer before the chain step, fund only once ``LoanOpened`` is recorded, cancel the reservation when the
chain step cannot happen. Each attempt's calls share one idempotency key, so a repeated call is the same call."""

from __future__ import annotations

import logging

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from aggregator.accept_saga import CANCEL_FAILED, CANCEL_REFUSED, AcceptRecord, QuoteView
from aggregator.errors import ProviderRefused
from providers.base import ProviderAdapter, ProviderError
from providers.models import InstallmentSchedule, ProviderKind, ProviderOffer, RepaymentShape

log = logging.getLogger(__name__)

LENDER_ATTEMPTS = 3  # tries of an idempotent lender call (cancel) within one pass, with exponential backoff
LENDER_BACKOFF = 0.5  # seconds before the first retry of a lender call; doubled each time, with as much jitter


class ReservationUnanswered(ProviderRefused):
    """The lender did not answer the reservation (a timeout, say): it may still have reserved the offer."""


class FundingRefused(ProviderRefused):
    """The lender answered the funding instruction, and not with ``funded``: a 404, 409 or 410 (the offer unknown,
    cancelled or gone), or another status in its answer."""


class LenderPhases:
    def __init__(self, providers: dict[str, ProviderAdapter], backoff: float = LENDER_BACKOFF) -> None:
        self._providers, self._backoff = providers, backoff

    def adapter(self, quote: QuoteView) -> ProviderAdapter:
        adapter = self._providers.get(quote.provider_id)
        if adapter is None:
            raise ProviderRefused(f"provider {quote.provider_id} is no longer registered")
        return adapter

    async def reserve(self, quote: QuoteView, record: AcceptRecord) -> None:
        """ProviderRefused when the lender declines; ReservationUnanswered when it did not answer."""
        try:
            result = await self.adapter(quote).reserve(provider_offer(quote), idempotency_key=lender_key(record))
        except ProviderError as err:
            # what the lender's transport said (an address, a status) is for the operator's log, not the borrower
            log.warning("accept of %s: %s did not answer the reservation: %s", record.quote_id, quote.provider_id, err)
            raise ReservationUnanswered(f"{quote.provider_id} did not answer the reservation") from err
        if not result.funded:
            # the lender's own words may say why it declined this borrower: logged for admins, not shown in the 409
            log.warning(
                "accept of %s: %s declined the reservation: %s", record.quote_id, quote.provider_id, result.detail
            )
            raise ProviderRefused(f"{quote.provider_id} declined to reserve the offer")

    async def fund(self, quote: QuoteView, record: AcceptRecord) -> None:
        """The funding instruction for the loan now confirmed on-chain (ProviderError or ProviderRefused when not
        delivered, FundingRefused when the lender answered it with anything but funded; idempotent under the
        attempt's key, so it can be sent again)."""
        result = await self.adapter(quote).fund(
            quote.offer["providerRef"],
            idempotency_key=lender_key(record),
            chain_id=quote.chain_id,
            tx_hash=record.tx_hash or "",
        )
        if not result.funded:
            raise FundingRefused(f"{quote.provider_id} refused to fund the loan: {result.detail or 'not funded'}")

    async def cancel(self, quote: QuoteView, record: AcceptRecord) -> str:
        """Cancel the attempt's reservation (idempotent under its key, so retried with backoff); the lender state
        to record: ``cancelled``, CANCEL_FAILED (no answer: recovery asks again) or CANCEL_REFUSED (a 4xx)."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(LENDER_ATTEMPTS),
            wait=wait_exponential_jitter(multiplier=self._backoff, jitter=self._backoff),
            retry=retry_if_exception(_lender_outage),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    result = await self.adapter(quote).cancel(
                        quote.offer["providerRef"], idempotency_key=lender_key(record)
                    )
        except ProviderError as err:
            log.warning("accept %s: reservation not cancelled: %s", quote.id, err)
            return CANCEL_FAILED if err.retryable else CANCEL_REFUSED
        except ProviderRefused as err:  # the lender is not registered now; it may be again
            log.warning("accept %s: reservation not cancelled: %s", quote.id, err)
            return CANCEL_FAILED
        if not result.funded:  # answered, not with cancelled (a 404, 409, 410): refused for good
            log.warning("accept %s: the lender refused to cancel the reservation: %s", quote.id, result.detail)
            return CANCEL_REFUSED
        return "cancelled"


def provider_offer(quote: QuoteView) -> ProviderOffer:
    """The lender's own offer as quoted, its repayment schedule (installments) included."""
    return ProviderOffer(
        provider_id=quote.provider_id,
        kind=ProviderKind.TRADITIONAL,
        asset=quote.asset,
        principal=quote.principal,
        rate_bps=int(quote.offer["rateBps"]),
        origination_fee=int(quote.offer["originationFee"]),
        term_days=int(quote.disclosure["termDays"]),
        repayment=RepaymentShape(quote.offer.get("repayment", RepaymentShape.SINGLE.value)),
        installments=int(quote.offer.get("installments", 1)),
        schedule=InstallmentSchedule.from_document(schedule) if (schedule := quote.offer.get("schedule")) else None,
        expires_at=quote.expires_at,
        provider_ref=str(quote.offer["providerRef"]),
    )


def lender_key(record: AcceptRecord) -> str:
    """The idempotency key of one attempt's reservation (its fund and cancel use the same key)."""
    return f"{record.quote_id}:{record.attempt}"


def _lender_outage(error: BaseException) -> bool:
    """A lender call that may succeed if tried again: a timeout, a transport failure, a 5xx, an open breaker."""
    return isinstance(error, ProviderError) and error.retryable
