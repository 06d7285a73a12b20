"""Health: a public liveness probe (``/healthz``) that says nothing but "alive", and the admins' per-chain health
(``/health``: head block, lag, last error and each RPC URL's breaker). ``/health`` is not public: hosted RPC URLs
usually carry an API key, and last errors describe the infrastructure."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import AdminPrincipal, PlatformDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Alive: the process answers requests (for load balancers and process supervisors; no key needed)."""
    return {"status": "ok"}


@router.get("/health")
async def health(_: AdminPrincipal, platform: PlatformDep) -> dict[str, Any]:
    """Per-chain health for admins: head block, lag, last error and each RPC URL with its breaker."""
    chains: dict[str, Any] = {}
    for name, chain in platform.chains.items():
        status = await chain.client.health()
        chains[name] = {
            "chain_id": status.chain_id,
            "ok": status.healthy,
            "head_block": status.head_block,
            "lag_seconds": status.lag_seconds,
            "last_error": status.last_error,
            "rpc": [{"url": endpoint.url, "breaker": endpoint.breaker} for endpoint in status.endpoints],
        }
    return {"status": "ok" if all(c["ok"] for c in chains.values()) else "degraded", "chains": chains}
