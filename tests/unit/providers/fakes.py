"""A scriptable in-memory adapter for the resilience tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Self

from providers.base import AdapterContext, ProviderAdapter, ProviderRegistration
from providers.models import (
    Capabilities,
    Decline,
    FundingResult,
    FundingState,
    FundingStatus,
    ProviderHealth,
    ProviderKind,
    ProviderOffer,
    QuoteRequest,
    RepaymentShape,
)
from providers.policy import ResiliencePolicy
from providers.resilience import AsyncBreaker, MemoryBreakerStore, MemoryRateLimiter, ResilientProvider

Behaviour = Callable[[int], "list[ProviderOffer] | Decline | BaseException | float"]

REQUEST = QuoteRequest(
    request_id="req-1",
    asset="USDC",
    asset_decimals=6,
    principal=1_500 * 10**6,
    term_days=30,
    purpose="working capital",
    collateral_asset="WETH",
    collateral_amount=10**18,
    collateral_decimals=18,
    chains=("ethereum-local",),
    grade=2,
    jurisdiction="US-NY",
)


def offer(provider_id: str = "fake") -> ProviderOffer:
    return ProviderOffer(
        provider_id=provider_id,
        kind=ProviderKind.TRADITIONAL,
        asset="USDC",
        principal=REQUEST.principal,
        rate_bps=800,
        origination_fee=15 * 10**6,
        term_days=30,
        repayment=RepaymentShape.SINGLE,
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
        provider_ref="ref-1",
    )


class FakeAdapter(ProviderAdapter):
    """Answers call ``n`` with ``behaviour(n)``: offers, a decline, an exception to raise, or seconds to hang
    (then offers). ``gate``, when set, holds every call until it is set."""

    kind = ProviderKind.TRADITIONAL.value

    def __init__(self, behaviour: Behaviour, provider_id: str = "fake") -> None:
        self.provider_id = provider_id
        self.behaviour = behaviour
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.gate: asyncio.Event | None = None
        self.accept_keys: list[str] = []

    @classmethod
    def from_registration(cls, registration: ProviderRegistration, context: AdapterContext) -> Self:
        return cls(lambda n: [offer(registration.provider_id)], registration.provider_id)

    def capabilities(self) -> Capabilities:
        return Capabilities(assets=frozenset({"USDC"}))

    async def _answer(self) -> list[ProviderOffer] | Decline:
        self.calls += 1
        n = self.calls
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            answer = self.behaviour(n)
            if isinstance(answer, BaseException):
                raise answer
            if isinstance(answer, float):
                await asyncio.sleep(answer)
                return [offer(self.provider_id)]
            return answer
        finally:
            self.in_flight -= 1

    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        return await self._answer()

    async def accept(self, offer: ProviderOffer, idempotency_key: str) -> FundingResult:
        self.accept_keys.append(idempotency_key)
        await self._answer()
        return FundingResult(self.provider_id, offer.provider_ref, True)

    async def status(self, provider_ref: str) -> FundingStatus:
        await self._answer()
        return FundingStatus(self.provider_id, provider_ref, FundingState.OFFERED)

    async def health(self) -> ProviderHealth:
        return ProviderHealth(self.provider_id, True)


async def wrapped(
    adapter: ProviderAdapter, policy: ResiliencePolicy, clock: Callable[[], float] | None = None
) -> ResilientProvider:
    store = MemoryBreakerStore()
    breaker = await (
        AsyncBreaker(adapter.provider_id, policy, store, clock)
        if clock
        else AsyncBreaker(adapter.provider_id, policy, store)
    ).start()
    return ResilientProvider(adapter, policy, breaker, MemoryRateLimiter(policy.rate_per_second, policy.burst))
