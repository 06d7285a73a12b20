"""The chain layer's exceptions: one root, structured subclasses that keep the raw cause (``raise … from err``)."""

from __future__ import annotations


class ChainError(Exception):
    """Root of every error raised by ``chain/``."""


class ConfigurationError(ChainError):
    """A chain or deployment is configured wrongly (unknown name, missing contract, bad URL)."""


class ChainIdMismatch(ChainError):
    """The node at an RPC URL reports another chain id than the configured one."""

    def __init__(self, url: str, expected: int, actual: int) -> None:
        super().__init__(f"RPC {url} serves chain id {actual}, configured {expected}: refusing to connect")
        self.url, self.expected, self.actual = url, expected, actual


class RpcUnavailable(ChainError):
    """No configured RPC URL of a chain answered."""


class ArtifactNotFound(ChainError):
    """A compiled contract artifact is missing: run `make compile` (scripts/setup.sh)."""


class TransactionReverted(ChainError):
    """A transaction was mined with status 0, or its simulation reverted."""

    def __init__(self, message: str, tx_hash: str | None = None, revert_data: str | None = None) -> None:
        super().__init__(message)
        self.tx_hash, self.revert_data = tx_hash, revert_data


class DevnetError(ChainError):
    """A local anvil devnet could not be started or stopped."""
