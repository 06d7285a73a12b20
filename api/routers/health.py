"""Liveness and per-chain health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import PlatformDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(platform: PlatformDep) -> dict[str, Any]:
    chains: dict[str, Any] = {}
    for name, chain in platform.chains.items():
        try:
            chains[name] = {"chain_id": chain.chain_id, "head_block": await chain.w3.eth.block_number, "ok": True}
        except Exception as err:
            chains[name] = {"chain_id": chain.chain_id, "ok": False, "error": type(err).__name__}
    return {"status": "ok" if all(c["ok"] for c in chains.values()) else "degraded", "chains": chains}
