"""A second process on the same Redis breaker: ``python -m tests.integration.providers.breaker_worker URL NAME CMD``.

``state`` prints the breaker as this process sees it; ``trials N`` tries N concurrent admissions, prints how many
were granted, then records each granted trial as a failure."""

from __future__ import annotations

import asyncio
import json
import sys

from providers._exceptions import CircuitOpen
from providers.policy import ResiliencePolicy
from providers.resilience import AsyncBreaker, Permit, RedisBreakerStore

POLICY = ResiliencePolicy(fail_max=2, reset_timeout_seconds=1.0, half_open_max_calls=2)


async def main(url: str, name: str, command: str, count: int) -> None:
    store = RedisBreakerStore.from_url(url)
    breaker = await AsyncBreaker(name, POLICY, store).start()
    result: dict[str, object] = {}
    if command == "trials":

        async def try_admit() -> Permit | None:
            try:
                return await breaker.admit()
            except CircuitOpen:
                return None

        permits = [p for p in await asyncio.gather(*(try_admit() for _ in range(count))) if p is not None]
        result["granted"] = len(permits)
        result["state_while_trying"] = await breaker.state()
        for permit in permits:
            await breaker.record(permit, failed=True)
    snapshot = await breaker.snapshot()
    result |= {
        "state": snapshot.state,
        "failures": snapshot.failures,
        "transitions": [[t.from_state, t.to_state] for t in snapshot.transitions],
    }
    print(json.dumps(result))
    await store.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 0))
