"""One chain's deployed contract set as governance reaches it: its web3 connection and deployments record, the
Timelock and Safe, each contract by its record key, and calls decoded by the record."""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3
from web3.contract import Contract

from chain.artifacts import load_artifact
from chain.deployment import DeploymentRecord
from chain.safe import safe_contract
from chain.timelock import TimelockCall, timelock_contract
from contracts.governance._safe_checks import SAFE_KEY
from contracts.governance.catalog import decode


@dataclass
class GovernedChain:
    """One chain's deployed set as governance reaches it."""

    name: str
    w3: Web3
    record: DeploymentRecord

    @property
    def chain_id(self) -> int:
        return self.record.chain_id

    @property
    def timelock(self) -> Contract:
        return timelock_contract(self.w3, self.record.address("Timelock"))

    @property
    def timelock_block(self) -> int:
        """The Timelock's deployment block: its events are read from there, not from genesis."""
        return self.record.contracts["Timelock"].block

    @property
    def safe(self) -> Contract:
        return safe_contract(self.w3, self.record.address(SAFE_KEY))

    def contract(self, key: str) -> Contract:
        deployed = self.record.contracts[key]
        return self.w3.eth.contract(address=deployed.address, abi=load_artifact(deployed.artifact).abi)

    def describe(self, call: TimelockCall) -> str:
        return decode(self.record, call)
