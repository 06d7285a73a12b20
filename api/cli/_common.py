"""What several command groups share: the API's default port and the local devnets' RPC URLs (cheap to import:
``creditmesh serve`` starts with it)."""

from __future__ import annotations

__all__ = ["API_PORT", "local_rpc"]

API_PORT = 8000  # the API's port in `creditmesh run` and `creditmesh serve`


def local_rpc(chain_name: str) -> str:
    """The RPC URL of a local devnet on its fixed ``make run`` port."""
    from chain.config import LOCAL_CHAINS

    port = next(chain.port for chain in LOCAL_CHAINS if chain.name == chain_name)
    return f"http://127.0.0.1:{port}"
