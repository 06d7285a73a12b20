"""The interface every provider adapter implements: HTTP lenders, plugins and on-chain pools alike."""

from __future__ import annotations

from abc import ABC, abstractmethod

from providers.models import Capabilities, Decline, FundingResult, ProviderHealth, ProviderOffer, QuoteRequest


class ProviderError(Exception):
    """Root of the providers package's errors: a provider failed (timeout, transport, 5xx, bad body)."""


class ProviderProtocolError(ProviderError):
    """A provider answered something the protocol does not allow (schema violation, bad signature)."""


class ProviderAdapter(ABC):
    """A lender the aggregator can ask for offers.

    Implementations are registered by entry point (``creditmesh.providers``), through the API (HTTP lenders
    speaking the Provider Quote Protocol), or as on-chain pools.
    """

    provider_id: str
    kind: str

    @abstractmethod
    def capabilities(self) -> Capabilities:
        """What the provider lends: assets, chains, amount and term ranges, collateral, jurisdictions."""

    @abstractmethod
    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        """Offers for ``request``, or a decline with its reason. Raises ProviderError when the provider fails."""

    @abstractmethod
    async def accept(self, offer: ProviderOffer, idempotency_key: str) -> FundingResult:
        """Tell the provider its offer was accepted. Never retried without the same ``idempotency_key``."""

    @abstractmethod
    async def health(self) -> ProviderHealth:
        """Whether the provider answers now."""
