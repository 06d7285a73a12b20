"""The per-chain configuration file of a deployment profile (``contracts/config/devnet.toml``, and a production
file like ``contracts/config/production.example.toml``): timelock delay, the Safe (an address, or owners and a
threshold to deploy one), role holders, and — in production — token addresses (each with the decimals the operator
expects, optionally) and price-feed addresses. Top-level tables apply to every chain; ``[chains.<name>]`` overrides
them. ``devnet:N`` names account N of anvil's development mnemonic. Validated when loaded (pydantic); addresses
checksummed."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chain.signers import devnet_account

CONFIG_DIR = Path(__file__).resolve().parent / "config"
DEVNET_CONFIG = CONFIG_DIR / "devnet.toml"


class DeployConfigError(ValueError):
    """A configuration file that cannot be used: unreadable, invalid, or without the chain asked for."""


def _address(value: Any) -> ChecksumAddress:
    text = str(value)
    if text.startswith("devnet:"):
        return devnet_account(int(text.removeprefix("devnet:"))).address
    if not is_address(text):
        raise ValueError(f"not an address: {text!r}")
    return to_checksum_address(text)


class SafeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: ChecksumAddress | None = None
    owners: tuple[ChecksumAddress, ...] = ()
    threshold: int = 0

    @field_validator("address", mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        return None if value is None else _address(value)

    @field_validator("owners", mode="before")
    @classmethod
    def _many(cls, value: Any) -> Any:
        return tuple(_address(item) for item in value)

    @model_validator(mode="after")
    def _address_or_owners(self) -> SafeConfig:
        if self.address is None and not 1 <= self.threshold <= len(self.owners):
            raise ValueError("a Safe needs an address, or owners and a threshold between 1 and their number")
        return self


class RolesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    relayer: ChecksumAddress  # RELAYER_ROLE: the only sender of openLoan
    quote_signer: ChecksumAddress
    risk_signer: ChecksumAddress
    operator: ChecksumAddress
    guardian: ChecksumAddress
    audit_anchor: ChecksumAddress  # ANCHOR_ROLE on the AuditAnchor
    extra_proposers: tuple[ChecksumAddress, ...] = ()
    keeper: ChecksumAddress | None = None  # liquidations: on devnets funded with the debt asset and approved

    @field_validator("relayer", "quote_signer", "risk_signer", "operator", "guardian", "audit_anchor", mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        return _address(value)

    @field_validator("keeper", mode="before")
    @classmethod
    def _optional(cls, value: Any) -> Any:
        return None if value is None else _address(value)

    @field_validator("extra_proposers", mode="before")
    @classmethod
    def _many(cls, value: Any) -> Any:
        return tuple(_address(item) for item in value)


class TokenConfig(BaseModel):
    """An existing token the production profile lists: its address, and optionally the decimals the operator expects
    it to have (the deploy refuses a token whose ``decimals()`` differ). Written as the address alone, or as
    ``{ address = "0x…", decimals = 6 }``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: ChecksumAddress
    decimals: int | None = Field(default=None, ge=0, le=255)

    @field_validator("address", mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        return _address(value)


class FeedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: ChecksumAddress
    heartbeat: int = Field(gt=0)

    @field_validator("address", mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        return _address(value)


#: the shortest Timelock delay a production deployment takes (CREDITMESH_ENVIRONMENT=production): the time lenders
#: and borrowers have to act before a governance change applies
PRODUCTION_MIN_TIMELOCK_DELAY = 48 * 3_600


def production_delay_refusal(chain: str, config: ChainDeployConfig) -> str | None:
    """Why ``config`` may not be deployed in production (a Timelock delay under 48 hours), or None."""
    if config.timelock_delay_seconds >= PRODUCTION_MIN_TIMELOCK_DELAY:
        return None
    return (
        f"{chain}: a Timelock delay of {config.timelock_delay_seconds} s is refused in production: at least "
        f"{PRODUCTION_MIN_TIMELOCK_DELAY} s (48 hours) gives lenders and borrowers time to act before a change applies"
    )


class ChainDeployConfig(BaseModel):
    """One chain's configuration, defaults merged in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: str
    timelock_delay_seconds: int = Field(ge=0)
    safe: SafeConfig
    roles: RolesConfig
    tokens: dict[str, TokenConfig] = Field(default_factory=dict)
    price_feeds: dict[str, FeedConfig] = Field(default_factory=dict)
    pool_liquidity: int = 1_000_000  # devnet: whole tokens the deployer deposits into each pool
    # An L2, whose prices hold only while its sequencer is up: production needs Chainlink's sequencer-uptime feed
    # (`sequencer_feed`); a devnet gets a mock one.
    layer2: bool = False
    sequencer_feed: ChecksumAddress | None = None
    # Where a liquidator pays for a loan funded off-chain, per provider id (CreditAggregator.setSettlementAddress).
    settlement_addresses: dict[str, ChecksumAddress] = Field(default_factory=dict)

    @field_validator("settlement_addresses", mode="before")
    @classmethod
    def _settlement(cls, value: Any) -> Any:
        return {provider: _address(address) for provider, address in dict(value).items()}

    @field_validator("sequencer_feed", mode="before")
    @classmethod
    def _sequencer(cls, value: Any) -> Any:
        return None if value is None else _address(value)

    @model_validator(mode="after")
    def _l2_has_a_sequencer_feed(self) -> ChainDeployConfig:
        if self.profile == "production" and self.layer2 and self.sequencer_feed is None:
            raise ValueError("a production L2 (layer2 = true) needs its sequencer_feed")
        return self

    @field_validator("tokens", mode="before")
    @classmethod
    def _tokens(cls, value: Any) -> Any:
        return {asset: entry if isinstance(entry, dict) else {"address": entry} for asset, entry in dict(value).items()}

    def holders(self) -> dict[str, str]:
        """Every configured address by what it is (for the production guard)."""
        named: dict[str, str] = {
            "relayer": self.roles.relayer,
            "quote signer": self.roles.quote_signer,
            "risk signer": self.roles.risk_signer,
            "operator": self.roles.operator,
            "guardian": self.roles.guardian,
            "audit anchor": self.roles.audit_anchor,
        }
        named.update({f"proposer #{n}": a for n, a in enumerate(self.roles.extra_proposers, 1)})
        named.update({f"Safe owner #{n}": a for n, a in enumerate(self.safe.owners, 1)})
        if self.safe.address is not None:
            named["Safe"] = self.safe.address
        return named


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def load_deploy_config(path: Path, chain_name: str, *, require_chain: bool = True) -> ChainDeployConfig:
    """``chain_name``'s configuration from ``path`` (the top-level defaults alone for a chain the file does not name,
    when ``require_chain`` is False: devnets started under other names by tests)."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise DeployConfigError(f"cannot read deployment configuration {path}: {err}") from err
    chains = raw.pop("chains", {})
    if not isinstance(chains, dict):
        raise DeployConfigError(f"{path}: chains must be a table of [chains.<name>] tables")
    if chain_name not in chains and require_chain:
        raise DeployConfigError(f"{path} has no [chains.{chain_name}] (it has {', '.join(chains) or 'none'})")
    overrides = chains.get(chain_name, {})
    if not isinstance(overrides, dict):
        raise DeployConfigError(f"{path}: chains.{chain_name} must be a table")
    try:
        return ChainDeployConfig.model_validate(_merge(raw, overrides))
    except ValidationError as err:
        raise DeployConfigError(f"{path} [chains.{chain_name}]: {err}") from err
