"""The lender's accept and its two phases through the resilience wrapper (``providers.resilience``): ``accept``,
``reserve``, ``fund`` and ``cancel`` are one attempt each under the breaker, bulkhead, rate limit and the accept
timeout; a retry is the caller's, under the same idempotency key (the accept saga retries ``cancel`` with backoff).
Private: ``ResilientProvider`` inherits these under the same public names."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from providers.base import ProviderAdapter
from providers.models import FundingResult, ProviderOffer
from providers.policy import ResiliencePolicy

T = TypeVar("T")


class _Attempting(Protocol):
    inner: ProviderAdapter
    policy: ResiliencePolicy

    async def _attempt(self, operation: str, call: Callable[[], Awaitable[T]], end: float, limit: float) -> T: ...


class LenderPhases:
    """``accept``, ``reserve``, ``fund``, ``cancel``: one attempt each, within the policy's accept timeout."""

    async def _once(self: _Attempting, operation: str, call: Callable[[], Awaitable[FundingResult]]) -> FundingResult:
        limit = self.policy.accept_timeout_seconds
        return await self._attempt(operation, call, time.monotonic() + limit, limit)

    async def accept(self: _Attempting, offer: ProviderOffer, idempotency_key: str) -> FundingResult:
        """One attempt: a retry is the caller's, with the same idempotency key."""
        if not idempotency_key:
            raise ValueError("an accept needs an idempotency key")
        return await LenderPhases._once(self, "accept", lambda: self.inner.accept(offer, idempotency_key))

    async def reserve(self: _Attempting, offer: ProviderOffer, idempotency_key: str) -> FundingResult:
        """One attempt, like ``accept``."""
        return await LenderPhases._once(self, "reserve", lambda: self.inner.reserve(offer, idempotency_key))

    async def fund(
        self: _Attempting, provider_ref: str, idempotency_key: str, chain_id: int, tx_hash: str
    ) -> FundingResult:
        return await LenderPhases._once(
            self, "fund", lambda: self.inner.fund(provider_ref, idempotency_key, chain_id, tx_hash)
        )

    async def cancel(self: _Attempting, provider_ref: str, idempotency_key: str) -> FundingResult:
        return await LenderPhases._once(self, "cancel", lambda: self.inner.cancel(provider_ref, idempotency_key))
