"""The runtime view of the chains the aggregator uses: for each chain, its configuration, deployment record,
an AsyncWeb3 client, the EIP-712 domains of the CreditAggregator and the CreditScoringOracle, and the relayer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import AsyncWeb3
from web3.providers.async_base import AsyncBaseProvider
from web3.providers.rpc import AsyncHTTPProvider

from chain.artifacts import load_artifact
from chain.config import ChainConfig
from chain.deployment import DeploymentRecord
from chain.errors import ChainIdMismatch
from chain.relay import Relayer
from chain.signers import Signer
from contracts.typed_data import Domain


@dataclass
class ChainRuntime:
    config: ChainConfig
    record: DeploymentRecord
    w3: AsyncWeb3[AsyncBaseProvider]
    relayer: Relayer

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def chain_id(self) -> int:
        return self.config.chain_id

    @property
    def aggregator_domain(self) -> Domain:
        return Domain(self.chain_id, self.record.address("CreditAggregator"))

    @property
    def oracle_domain(self) -> Domain:
        return Domain(self.chain_id, self.record.address("CreditScoringOracle"))

    def aggregator(self) -> Any:
        return self.w3.eth.contract(
            address=self.record.address("CreditAggregator"), abi=load_artifact("CreditAggregator").abi
        )


async def connect_chain(config: ChainConfig, record: DeploymentRecord, relayer_signer: Signer) -> ChainRuntime:
    """An AsyncWeb3 client for the chain's first RPC URL, refusing a node whose chain id differs."""
    url = config.rpc_urls[0]
    w3: AsyncWeb3[AsyncBaseProvider] = AsyncWeb3(AsyncHTTPProvider(url, request_kwargs={"timeout": 10}))
    actual = await w3.eth.chain_id
    if actual != config.chain_id:
        raise ChainIdMismatch(url, config.chain_id, actual)
    if record.chain_id != config.chain_id:
        raise ChainIdMismatch(f"deployments record of {config.name}", config.chain_id, record.chain_id)
    return ChainRuntime(config, record, w3, Relayer(w3, relayer_signer, config.chain_id))
