"""What several command groups share: the API's default port and the local devnets' RPC URLs."""

from __future__ import annotations

from api.local_platform import API_PORT
from chain.config import LOCAL_CHAINS

__all__ = ["API_PORT", "local_rpc"]


def local_rpc(chain_name: str) -> str:
    """The RPC URL of a local devnet on its fixed ``make run`` port."""
    port = next(chain.port for chain in LOCAL_CHAINS if chain.name == chain_name)
    return f"http://127.0.0.1:{port}"
