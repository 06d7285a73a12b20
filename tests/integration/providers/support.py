"""The simulated lenders' server in its own process, and registries of HTTP lenders pointed at it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from chain.devnet import free_port
from providers.base import AdapterContext, ProviderRegistration
from providers.models import Capabilities
from providers.policy import ResiliencePolicy
from providers.registry import PluginLoader, ProviderRegistry
from providers.resilience import BreakerStore, MemoryBreakerStore, MemoryRateLimiter
from providers.sim.fleet import SimLender, lender_url

SECRET = "integration-lender-secret"


@contextmanager
def sim_server(lenders: list[SimLender], workdir: Path) -> Iterator[str]:
    """Start ``python -m providers.sim`` hosting ``lenders``; yield its base URL."""
    port = free_port()
    fleet = workdir / "fleet.json"
    fleet.write_text(json.dumps([lender.model_dump(mode="json") for lender in lenders]))
    process = subprocess.Popen(
        [sys.executable, "-m", "providers.sim", "--port", str(port), "--fleet", str(fleet)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"sim server exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("sim server did not start")
            time.sleep(0.05)
        yield base
    finally:
        process.terminate()  # uvicorn waits for requests still hanging on purpose; no state to lose, so not long
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def lender_requests(base: str, lender_id: str) -> dict[str, int]:
    """How many requests of each kind reached the lender (the sim's own count)."""
    counts: dict[str, int] = httpx.get(f"{base}/control/lenders/{lender_id}", timeout=5).json()["requests"]
    return counts


def set_failure(base: str, lender_id: str, failure: dict[str, Any]) -> None:
    httpx.put(f"{base}/control/lenders/{lender_id}/failure", json=failure, timeout=5).raise_for_status()


async def http_registry(
    base: str,
    lender_ids: list[str],
    http: httpx.AsyncClient,
    policy: ResiliencePolicy,
    store: BreakerStore | None = None,
) -> ProviderRegistry:
    registry = ProviderRegistry(
        AdapterContext(http),
        PluginLoader(),
        store or MemoryBreakerStore(),
        lambda p: MemoryRateLimiter(p.rate_per_second, p.burst),
        policy,
    )
    for lender_id in lender_ids:
        config = {"base_url": lender_url(base, lender_id), "secret": SECRET, "timeout_seconds": 2.0}
        await registry.add(ProviderRegistration(lender_id, "http", config, Capabilities(assets=frozenset({"USDC"}))))
    return registry
