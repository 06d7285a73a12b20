"""The lifecycle's timings per chain, and the owner id a manager stamps on the intents it follows."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any

from chain.client import ChainClient
from chain.settled import DEFAULT_CAPACITY


@dataclass(frozen=True, slots=True)
class LifecycleSettings:
    confirmations: int = 1
    poll_interval: float = 0.25  # seconds between watcher ticks
    stuck_after: float = 30.0  # seconds after sending before a same-nonce replacement
    gas_margin_percent: int = 20  # over eth_estimateGas
    rebroadcast_after: float = 10.0  # seconds before a sent, unmined transaction is broadcast again
    # An open intent's lease: its owner renews it every claim_after / 3 seconds; another manager of the same account
    # takes the intent over only after it has gone this many seconds unrenewed (its owner died or stalled).
    claim_after: float = 30.0
    rpc_timeout: float = 10.0
    # outcomes kept in memory for waiters (chain.settled); an older one is read from its intent's record
    settled_capacity: int = DEFAULT_CAPACITY

    def gas_limit(self, estimate: int) -> int:
        """The gas limit sent for a call ``eth_estimateGas`` put at ``estimate``: the estimate and the margin."""
        return estimate + estimate * self.gas_margin_percent // 100

    @classmethod
    def for_chain(cls, client: ChainClient, **overrides: Any) -> LifecycleSettings:
        block_time = client.config.block_time_seconds
        base = cls(
            confirmations=max(1, client.config.confirmations),
            poll_interval=min(1.0, max(0.05, block_time / 4)),
            stuck_after=max(3 * block_time, 15.0),
        )
        return cls(**{**{f: getattr(base, f) for f in cls.__dataclass_fields__}, **overrides})


def default_owner() -> str:
    """An owner id unique to one manager instance: host, process and a random suffix."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"
