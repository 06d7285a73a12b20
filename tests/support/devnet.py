"""Three anvil devnets (31337, 31338, 31339) on free loopback ports with the devnet contract set deployed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.types import RPCEndpoint

from chain.artifacts import load_artifact
from chain.config import LOCAL_CHAINS, ChainConfig
from chain.deployment import DeploymentRecord
from chain.devnet import Devnet, devnets
from contracts.deploy import deploy_to_devnet


@dataclass
class DeployedChain:
    """One running devnet with its deployment record and a synchronous Web3 for test assertions."""

    devnet: Devnet
    record: DeploymentRecord
    w3: Web3

    @property
    def name(self) -> str:
        return self.devnet.name

    @property
    def chain_id(self) -> int:
        return self.devnet.chain_id

    @property
    def config(self) -> ChainConfig:
        return self.devnet.config()

    def contract(self, key: str) -> Contract:
        deployed = self.record.contracts[key]
        return self.w3.eth.contract(address=deployed.address, abi=load_artifact(deployed.artifact).abi)

    def register_pool(self, pool: str) -> int:
        """``CreditAggregator.registerPool(pool)`` as the Timelock's executed operation calls it (the Timelock
        impersonated), unless it is registered already; the pool's id. A pool the aggregator has not registered is
        declined by its adapter and refused at registration through the API (``UnknownPool`` at every accept)."""
        aggregator = self.contract("CreditAggregator")
        if aggregator.functions.poolId(pool).call() == 0:
            timelock = self.record.address("Timelock")
            self.w3.provider.make_request(RPCEndpoint("anvil_impersonateAccount"), [timelock])
            self.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [timelock, hex(10**18)])
            tx = aggregator.functions.registerPool(pool).transact({"from": timelock})
            self.w3.eth.wait_for_transaction_receipt(tx)
        return int(aggregator.functions.poolId(pool).call())

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Revert the chain to its present state afterwards."""
        snapshot_id: Any = self.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
        try:
            yield
        finally:
            self.w3.provider.make_request("evm_revert", [snapshot_id])  # type: ignore[arg-type]


def _provider(rpc_url: str) -> HTTPProvider:
    """web3's validation asks the node for its chain id before every call and transaction (a fifth of the property
    run's time): a devnet's never changes, so it is cached. Nothing else is (a block by number is not: a test that
    reverts to a snapshot mines a different block under the same number)."""
    return HTTPProvider(rpc_url, cache_allowed_requests=True, cacheable_requests={RPCEndpoint("eth_chainId")})


@contextmanager
def deployed_devnets(record_dir: Path) -> Iterator[dict[str, DeployedChain]]:
    with devnets(LOCAL_CHAINS, free_ports=True) as running:
        chains = {}
        for devnet in running:
            record = deploy_to_devnet(devnet.name, devnet.chain_id, devnet.rpc_url, record_dir / f"{devnet.name}.json")
            chains[devnet.name] = DeployedChain(devnet, record, Web3(_provider(devnet.rpc_url)))
        yield chains
