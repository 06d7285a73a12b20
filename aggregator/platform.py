"""The runtime view of the chains the aggregator uses: for each chain, its client (RPC failover, chain-id check),
deployment record, the EIP-712 domains of the CreditAggregator and the CreditScoringOracle, and the relayer's
transaction manager (persisted intents, nonce allocator, fee bumps, resume after restart)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import AsyncWeb3

from chain.artifacts import load_artifact
from chain.client import ChainClient
from chain.config import ChainConfig
from chain.deployment import DeploymentRecord
from chain.errors import ChainIdMismatch
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Signer
from chain.transactions import TransactionManager
from contracts.typed_data import Domain
from store.chain import SqlChainStore


@dataclass
class ChainRuntime:
    client: ChainClient
    record: DeploymentRecord
    transactions: TransactionManager

    @property
    def config(self) -> ChainConfig:
        return self.client.config

    @property
    def w3(self) -> AsyncWeb3[Any]:
        return self.client.w3

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def chain_id(self) -> int:
        return self.config.chain_id

    @property
    def relayer(self) -> str:
        return self.transactions.signer.address

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

    async def close(self) -> None:
        await self.transactions.close()
        await self.client.close()


async def connect_chain(
    config: ChainConfig, record: DeploymentRecord, relayer: Signer, store: SqlChainStore
) -> ChainRuntime:
    """Connect (refusing a node whose chain id differs) and start the relayer's transaction manager."""
    if record.chain_id != config.chain_id:
        raise ChainIdMismatch(f"deployments record of {config.name}", config.chain_id, record.chain_id)
    client = await ChainClient(config).connect()
    transactions = await TransactionManager(client, relayer, store, revert_artifacts=REVERT_ARTIFACTS).start()
    return ChainRuntime(client, record, transactions)
