"""Synchronous sending for admin tools (governance, guardian): one signer's calls on one chain through the
transaction lifecycle (nonce allocation, fee policy, gas estimation with the revert decoded, receipts), the same
machinery ``Deployer`` drives, without a deployments record."""

from __future__ import annotations

from pathlib import Path

from web3 import Web3

from chain.config import ChainConfig
from chain.deployment import DEVNET_CLIENTS, _Lifecycle
from chain.errors import ConfigurationError
from chain.signers import Signer
from chain.transactions import Call, Receipt


class SyncSender:
    """Sends ``Call`` s from ``signer`` and waits for their receipts. Intents live in ``intents_path`` (a temporary
    file when None), keyed by the caller's intent key: a key already confirmed returns its receipt again."""

    def __init__(
        self,
        w3: Web3,
        signer: Signer,
        *,
        chain_name: str,
        intents_path: Path | None = None,
        config: ChainConfig | None = None,
        wait_timeout: float = 120.0,
    ) -> None:
        devnet = w3.client_version.lower().startswith(DEVNET_CLIENTS)
        if config is None:
            url = getattr(w3.provider, "endpoint_uri", None)
            if not url:
                raise ConfigurationError(f"SyncSender needs an HTTP provider or a ChainConfig, got {w3.provider!r}")
            config = ChainConfig(
                name=chain_name,
                chain_id=w3.eth.chain_id,
                rpc_urls=[str(url)],
                confirmations=1,
                block_time_seconds=0.2 if devnet else 1.0,
            )
        self.signer = signer
        self._lifecycle = _Lifecycle(config, signer, intents_path, None, None, None, wait_timeout, devnet)

    def send(self, intent_key: str, call: Call) -> Receipt:
        """Send ``call`` (or resume ``intent_key``) and return its confirmed receipt; raises
        ``GasEstimationFailed`` (with the decoded revert) when the node says it would revert."""
        return self._lifecycle.transact(intent_key, call)

    def close(self) -> None:
        self._lifecycle.close()

    def __enter__(self) -> SyncSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
