"""Discovery: what a client needs to verify a quote by itself — each chain's id, name, contract addresses and
EIP-712 domains (the aggregator's for offers and acceptances, the scoring oracle's for risk attestations), the quote
signer's and the risk signer's addresses, and the assets with their decimals and token addresses."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentPrincipal, PlatformDep
from api.schemas import AssetOut, ChainOut, PlatformOut

router = APIRouter(prefix="/v1/platform", tags=["platform"])


@router.get("", response_model=PlatformOut)
async def get_platform(_: CurrentPrincipal, platform: PlatformDep) -> PlatformOut:
    """The chains, contracts, EIP-712 domains, signer addresses and assets (any API key)."""
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
            AssetOut(symbol=asset.symbol, decimals=asset.decimals, addresses=dict(asset.addresses))
            for asset in (platform.assets.get(symbol) for symbol in platform.assets.symbols())
        ],
    )
