"""Liveness and per-chain health: head block, lag, last error and each RPC URL's breaker."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import PlatformDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(platform: PlatformDep) -> dict[str, Any]:
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
