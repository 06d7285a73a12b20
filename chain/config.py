"""The chain registry: which chains the platform uses and how to reach them. Devnets and real networks differ
only in this configuration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from chain.errors import ConfigurationError


class ChainConfig(BaseModel):
    """One EVM chain. ``rpc_urls`` are tried in order; a node whose chain id differs is refused."""

    name: str = Field(min_length=1)
    chain_id: int = Field(gt=0)
    rpc_urls: list[str] = Field(min_length=1)
    confirmations: int = Field(default=1, ge=0)
    block_time_seconds: float = Field(default=1.0, gt=0)
    native_token: str = "ETH"  # noqa: S105 - a token symbol, not a secret
    max_fee_gwei: int = Field(default=500, gt=0)
    # a block explorer's transaction page, ``{tx}`` replaced by the hash (reconciliation reports link each item)
    explorer_tx_url: str | None = None

    @field_validator("rpc_urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"RPC URL must be http(s): {url!r}")
        return urls


class LocalChain(BaseModel):
    """A devnet the platform starts itself: name, chain id and the fixed port `make run` uses."""

    name: str
    chain_id: int
    port: int


LOCAL_CHAINS: tuple[LocalChain, ...] = (
    LocalChain(name="ethereum-local", chain_id=31337, port=8545),
    LocalChain(name="polygon-local", chain_id=31338, port=8546),
    LocalChain(name="arbitrum-local", chain_id=31339, port=8547),
)


class ChainRegistry:
    """Chains by name and by chain id."""

    def __init__(self, chains: list[ChainConfig]) -> None:
        self._by_name = {chain.name: chain for chain in chains}
        self._by_id = {chain.chain_id: chain for chain in chains}
        if len(self._by_name) != len(chains) or len(self._by_id) != len(chains):
            raise ConfigurationError("chain names and chain ids must be unique")

    @classmethod
    def from_file(cls, path: Path) -> ChainRegistry:
        """Load a JSON list of chain objects (see docs/configuration.md)."""
        try:
            raw = json.loads(path.read_text())
            return cls([ChainConfig.model_validate(item) for item in raw])
        except (OSError, ValueError) as err:
            raise ConfigurationError(f"cannot load chain configuration {path}: {err}") from err

    def __iter__(self) -> Iterator[ChainConfig]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def by_name(self, name: str) -> ChainConfig:
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigurationError(f"unknown chain {name!r}; configured: {', '.join(self._by_name)}") from None

    def by_id(self, chain_id: int) -> ChainConfig:
        try:
            return self._by_id[chain_id]
        except KeyError:
            raise ConfigurationError(f"unknown chain id {chain_id}") from None
