"""What several command groups share: the API's default port and the local devnets' RPC URLs (cheap to import:
``creditmesh serve`` starts with it)."""

from __future__ import annotations

import argparse
import math

__all__ = ["API_PORT", "devnet_index", "local_rpc", "positive_seconds"]

API_PORT = 8000  # the API's port in `creditmesh run` and `creditmesh serve`


def local_rpc(chain_name: str) -> str:
    """The RPC URL of a local devnet on its fixed ``make run`` port."""
    from chain.config import LOCAL_CHAINS

    port = next(chain.port for chain in LOCAL_CHAINS if chain.name == chain_name)
    return f"http://127.0.0.1:{port}"


def positive_seconds(text: str) -> float:
    """A ``--lease-seconds`` or ``--interval``: a finite number of seconds above 0. The workers' settings are copied
    with it, which skips their own bounds: a lease of 0 or -5 expired as it was taken and its renewal spun."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{text} must be a number of seconds above 0")
    return seconds


def devnet_index(text: str) -> int:
    """A ``--account``: the index of one of anvil's devnet accounts (0 … 19); another was a traceback."""
    from chain.devnet import DEVNET_ACCOUNTS

    if not text.isdigit() or int(text) >= DEVNET_ACCOUNTS:
        raise argparse.ArgumentTypeError(f"{text!r} is no devnet account: 0 to {DEVNET_ACCOUNTS - 1}")
    return int(text)
