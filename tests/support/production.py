"""A production-profile deployment on a fresh anvil, as an operator makes one: the chain's tokens and feeds exist
first (here deployed before, as a real chain already has them), and a configuration file names them with the role
holders (the devnet accounts the local platform signs with, so that it can run on the record)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eth_typing import ChecksumAddress
from web3 import Web3

from chain.deployment import Deployer, DeploymentRecord
from chain.signers import Role, devnet_signer


@dataclass(frozen=True)
class ExistingTokens:
    """The chain's own tokens and USD feeds, before the platform is deployed."""

    usdc: ChecksumAddress
    weth: ChecksumAddress
    usdc_feed: ChecksumAddress
    weth_feed: ChecksumAddress


def existing_tokens(w3: Web3, chain_id: int, usdc_decimals: int = 6) -> ExistingTokens:
    with Deployer(
        w3, devnet_signer(Role.DEPLOYER), DeploymentRecord(chain_name="pre", chain_id=chain_id, profile="pre")
    ) as pre:
        return ExistingTokens(
            usdc=pre.deploy("USDC", "MockERC20", "USD Coin", "USDC", usdc_decimals),
            weth=pre.deploy("WETH", "MockERC20", "Wrapped Ether", "WETH", 18),
            usdc_feed=pre.deploy("USDC-feed", "MockPriceFeed", 8, 10**8),
            weth_feed=pre.deploy("WETH-feed", "MockPriceFeed", 8, 3_000 * 10**8),
        )


def production_config(
    path: Path, chain_name: str, tokens: ExistingTokens, usdc: str | None = None, guardian: str = "devnet:5"
) -> Path:
    """The configuration file of ``chain_name``; ``usdc``: its USDC entry (the address alone by default)."""
    path.write_text(
        f"""
profile = "production"
timelock_delay_seconds = 600
[safe]
owners = ["devnet:12", "devnet:13", "devnet:14"]
threshold = 2
[roles]
relayer = "devnet:1"
quote_signer = "devnet:2"
risk_signer = "devnet:3"
operator = "devnet:4"
guardian = "{guardian}"
audit_anchor = "devnet:11"
[chains.{chain_name}]
tokens = {{ USDC = {usdc or f'"{tokens.usdc}"'}, WETH = "{tokens.weth}" }}
price_feeds.USDC = {{ address = "{tokens.usdc_feed}", heartbeat = 86400 }}
price_feeds.WETH = {{ address = "{tokens.weth_feed}", heartbeat = 3600 }}
"""
    )
    return path
