"""Relaying a contract call from a role's signer on one chain: simulate, sign, send, wait for the receipt.

The walking skeleton's sender: one asyncio lock per (chain, account) keeps nonces in order within this process.
The crash-safe transaction lifecycle with a persistent nonce allocator replaces it."""

from __future__ import annotations

import asyncio
from typing import Any

from web3 import AsyncWeb3
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.providers.async_base import AsyncBaseProvider
from web3.types import TxReceipt

from chain.errors import TransactionReverted
from chain.revert import decode_revert
from chain.signers import Signer

REVERT_ARTIFACTS = ("Errors", "MockERC20", "CreditAggregator", "LendingPool", "CollateralManager")


class Relayer:
    def __init__(
        self, w3: AsyncWeb3[AsyncBaseProvider], signer: Signer, chain_id: int, receipt_timeout: float = 60
    ) -> None:
        self.w3, self.signer, self.chain_id = w3, signer, chain_id
        self._lock = asyncio.Lock()
        self._receipt_timeout = receipt_timeout

    async def simulate(self, call: Any) -> Any:
        """``eth_call`` the contract function as the signer; a revert raises TransactionReverted with its error."""
        try:
            return await call.call({"from": self.signer.address})
        except ContractCustomError as err:
            decoded = decode_revert(err.data, REVERT_ARTIFACTS)
            raise TransactionReverted(
                str(decoded) if decoded else f"custom error {err.data}", revert_data=str(err.data)
            ) from err
        except ContractLogicError as err:
            raise TransactionReverted(f"reverted: {err.message}", revert_data=str(err.data)) from err

    async def send(self, call: Any) -> TxReceipt:
        """Simulate, then sign and send, and wait for the receipt (status 1, or TransactionReverted)."""
        await self.simulate(call)
        async with self._lock:
            tx = dict(await call.build_transaction({"from": self.signer.address, "chainId": self.chain_id}))
            tx["nonce"] = await self.w3.eth.get_transaction_count(self.signer.address, "pending")
            tx_hash = await self.w3.eth.send_raw_transaction(self.signer.sign_transaction(tx))
        receipt = await self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self._receipt_timeout)
        if receipt["status"] != 1:
            raise TransactionReverted("transaction reverted", tx_hash=tx_hash.to_0x_hex())
        return receipt
