"""The simulated lenders' server in its own process, registries of HTTP lenders pointed at it, and the providers
API in-process over a registry backed by a database (what the registration tests of one and of several processes
share)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from fastapi import FastAPI

from aggregator.assets import Asset, AssetRegistry
from api import problems
from api.routers import providers as providers_router
from api.settings import Settings
from chain.devnet import free_port
from compliance import load_rules
from providers.base import AdapterContext, ProviderRegistration
from providers.destinations import LOOPBACK_NETWORKS, DestinationGuard
from providers.models import Capabilities
from providers.policy import ResiliencePolicy
from providers.registry import PluginLoader, ProviderRegistry
from providers.resilience import BreakerStore, MemoryBreakerStore, MemoryRateLimiter
from providers.secrets import SecretBox
from providers.sim.fleet import SimLender, lender_url
from store.db import Database

SECRET = "integration-lender-secret"
#: the test allow-list: the simulated lender listens on 127.0.0.1; every other internal address is refused
GUARD = DestinationGuard(LOOPBACK_NETWORKS)


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


def stored_registry(
    database: Database, http: httpx.AsyncClient, plugins: PluginLoader | None = None
) -> ProviderRegistry:
    """A process's registry of the lenders registered in ``database`` (secrets sealed, destinations on loopback);
    ``plugins``: the adapter kinds it builds (the installed ones by default)."""
    return ProviderRegistry(
        AdapterContext(http, destinations=GUARD),
        plugins or PluginLoader(),
        MemoryBreakerStore(),
        lambda p: MemoryRateLimiter(p.rate_per_second, p.burst),
        ResiliencePolicy(quote_attempts=1),
        database,
        secrets=SecretBox.from_master_key(b"\x01" * 32),
    )


def providers_api(registry: ProviderRegistry, database: Database) -> FastAPI:
    """The providers router alone, over ``registry``, with problem+json errors."""
    app = FastAPI()
    problems.install(app)
    app.include_router(providers_router.router)
    # the assets and chains a registration's capabilities may name
    assets = AssetRegistry([Asset("USDC", 6, Decimal(1)), Asset("WETH", 18, Decimal(3_000))])
    chains = dict.fromkeys(("ethereum-local", "polygon-local", "arbitrum-local"))
    # and the jurisdictions: the shipped rules
    compliance = SimpleNamespace(rules=load_rules())
    app.state.platform = SimpleNamespace(
        providers=registry, database=database, settings=Settings(), assets=assets, chains=chains, compliance=compliance
    )
    return app


def registration(base: str, **changes: Any) -> dict[str, Any]:
    """The admin's registration body of the simulated ``late-bank`` at ``base``, with ``changes``."""
    return {
        "provider_id": "late-bank",
        "kind": "http",
        "config": {"base_url": lender_url(base, "late-bank"), "secret": SECRET},
        "capabilities": {"assets": ["USDC"], "max_term_days": 365},
        "resilience": {"fail_max": 10, "quote_attempts": 1},
    } | changes
