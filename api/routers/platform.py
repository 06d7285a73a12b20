"""Discovery: what a client needs to verify a quote by itself — each chain's id, name, contract addresses and
EIP-712 domains (the aggregator's for offers and acceptances, the scoring oracle's for risk attestations), the quote
signer's and the risk signer's addresses, and the assets with their decimals, token addresses and the tokens' own
EIP-712 domains (an EIP-2612 permit of the collateral or the debt asset is signed under them)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from aggregator.assets import Asset
from api.bootstrap import Platform
from api.deps import CurrentPrincipal, PlatformDep
from api.schemas import AssetOut, ChainOut, PlatformOut

router = APIRouter(prefix="/v1/platform", tags=["platform"])


@router.get("", response_model=PlatformOut)
async def get_platform(_: CurrentPrincipal, platform: PlatformDep) -> PlatformOut:
    """The chains, contracts, EIP-712 domains, signer addresses and assets with their permit domains (any API
    key)."""
    assets = [platform.assets.get(symbol) for symbol in platform.assets.symbols()]
    permit_domains = await asyncio.gather(*(_permit_domains(platform, asset) for asset in assets))
    return PlatformOut(
        chains=[
            ChainOut(
                name=name,
                chain_id=chain.chain_id,
                contracts={key: str(contract.address) for key, contract in sorted(chain.record.contracts.items())},
                eip712_domain=chain.aggregator_domain.as_dict(),
                risk_attestation_domain=chain.oracle_domain.as_dict(),
                relayer=chain.relayer,
            )
            for name, chain in platform.chains.items()
        ],
        quote_signer=platform.quoting.quote_signer_address,
        risk_signer=platform.quoting.risk_signer_address,
        assets=[
            AssetOut(
                symbol=asset.symbol, decimals=asset.decimals, addresses=dict(asset.addresses), permit_domains=found
            )
            for asset, found in zip(assets, permit_domains, strict=True)
        ],
    )


async def _permit_domains(platform: Platform, asset: Asset) -> dict[str, dict[str, Any] | None]:
    """The asset's token's permit domain on each chain it is listed on (read once per token and chain)."""
    listed = [(name, address) for name, address in sorted(asset.addresses.items()) if name in platform.chains]
    domains = await asyncio.gather(
        *(platform.token_domains.domain(platform.chains[name], address) for name, address in listed)
    )
    return {
        name: None if domain is None else domain.as_dict() for (name, _), domain in zip(listed, domains, strict=True)
    }
