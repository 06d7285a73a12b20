"""Generic deployment machinery: deploy any artifact with constructor arguments, idempotently, and keep a
deployments record per chain (addresses, transaction hashes, blocks, compiler settings, source commit) that the
platform reads at start-up. It knows nothing about which contracts exist: ``contracts/deploy.py`` is the recipe."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress
from pydantic import BaseModel, Field
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.types import TxReceipt

from chain.artifacts import PROJECT_ROOT, load_artifact
from chain.errors import ChainIdMismatch, ConfigurationError, TransactionReverted
from chain.signers import Signer


class DeployedContract(BaseModel):
    artifact: str
    address: ChecksumAddress
    tx_hash: str
    block: int
    constructor_args: list[Any] = Field(default_factory=list)
    compiler: dict[str, Any] = Field(default_factory=dict)


class DeploymentRecord(BaseModel):
    """What is deployed on one chain, keyed by the recipe's names (``CreditAggregator``, ``USDC``, ...)."""

    chain_name: str
    chain_id: int
    profile: str
    source_commit: str = "unknown"
    deployed_at: str = ""
    contracts: dict[str, DeployedContract] = Field(default_factory=dict)
    steps: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)

    def address(self, key: str) -> ChecksumAddress:
        try:
            return self.contracts[key].address
        except KeyError:
            known = ", ".join(self.contracts) or "none"
            raise ConfigurationError(f"{key} is not deployed on {self.chain_name} (deployed: {known})") from None

    @classmethod
    def load(cls, path: Path) -> DeploymentRecord:
        try:
            return cls.model_validate_json(path.read_text())
        except (OSError, ValueError) as err:
            raise ConfigurationError(f"cannot read deployments record {path}: {err}") from err

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)


def source_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Deployer:
    """Deploys and configures contracts on one chain from one signer, recording every step so that a re-run
    skips what is done (idempotent). Synchronous: deployment is an admin operation, not the request path."""

    def __init__(self, w3: Web3, signer: Signer, record: DeploymentRecord, record_path: Path | None = None) -> None:
        actual = w3.eth.chain_id
        if actual != record.chain_id:
            raise ChainIdMismatch(str(w3.provider), record.chain_id, actual)
        self.w3, self.signer, self.record, self.record_path = w3, signer, record, record_path
        if not record.source_commit or record.source_commit == "unknown":
            record.source_commit = source_commit()

    def contract(self, key: str, artifact: str | None = None) -> Contract:
        deployed = self.record.contracts[key]
        return self.w3.eth.contract(address=deployed.address, abi=load_artifact(artifact or deployed.artifact).abi)

    def deploy(self, key: str, artifact: str, *args: Any) -> ChecksumAddress:
        """Deploy ``artifact`` as ``key`` unless the record already has it with code on chain."""
        existing = self.record.contracts.get(key)
        if existing is not None and self.w3.eth.get_code(existing.address):
            return existing.address
        compiled = load_artifact(artifact)
        factory = self.w3.eth.contract(abi=compiled.abi, bytecode=compiled.bytecode)
        receipt = self._send(factory.constructor(*args), f"deploy {key}")
        address = receipt["contractAddress"]
        if address is None:
            raise TransactionReverted(f"deploy {key}: no contract address in receipt")
        self.record.contracts[key] = DeployedContract(
            artifact=artifact,
            address=address,
            tx_hash=receipt["transactionHash"].to_0x_hex(),
            block=receipt["blockNumber"],
            constructor_args=[_jsonable(arg) for arg in args],
            compiler=compiled.compiler,
        )
        self._save()
        return address

    def step(self, name: str, key: str, function: str, *args: Any) -> TxReceipt | None:
        """Call ``function(*args)`` on contract ``key`` once; a step already recorded is skipped."""
        if name in self.record.steps:
            return None
        call = getattr(self.contract(key).functions, function)(*args)
        receipt = self._send(call, f"{name} ({key}.{function})")
        self.record.steps.append(name)
        self._save()
        return receipt

    def _base_tx(self) -> dict[str, Any]:
        return {"from": self.signer.address, "chainId": self.record.chain_id}

    def _send(self, buildable: Any, what: str) -> TxReceipt:
        """Build (which estimates gas and EIP-1559 fees), sign, send and wait for one transaction."""
        try:
            tx = dict(buildable.build_transaction(self._base_tx()))
        except ContractLogicError as err:
            raise TransactionReverted(f"{what}: reverted in simulation: {err}", revert_data=str(err.data)) from err
        tx["nonce"] = self.w3.eth.get_transaction_count(self.signer.address, "pending")
        tx_hash = self.w3.eth.send_raw_transaction(self.signer.sign_transaction(tx))
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        if receipt["status"] != 1:
            raise TransactionReverted(f"{what}: reverted", tx_hash=tx_hash.to_0x_hex())
        return receipt

    def _save(self) -> None:
        self.record.deployed_at = datetime.now(UTC).isoformat(timespec="seconds")
        if self.record_path is not None:
            self.record.save(self.record_path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value
