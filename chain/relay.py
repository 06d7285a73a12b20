"""Simulating a contract call before committing to it: ``eth_call`` as the sender, a revert decoded to its custom
error. Sending goes through ``chain.transactions.TransactionManager``."""

from __future__ import annotations

from typing import Any

from web3.exceptions import ContractCustomError, ContractLogicError

from chain.errors import TransactionReverted
from chain.revert import decode_revert

REVERT_ARTIFACTS = ("Errors", "MockERC20", "CreditAggregator", "LendingPool", "CollateralManager")


async def simulate(call: Any, sender: str) -> Any:
    """``eth_call`` the contract function as ``sender``; a revert raises TransactionReverted naming its error."""
    try:
        return await call.call({"from": sender})
    except ContractCustomError as err:
        decoded = decode_revert(err.data, REVERT_ARTIFACTS)
        message = str(decoded) if decoded else f"custom error {err.data}"
        raise TransactionReverted(message, revert_data=str(err.data)) from err
    except ContractLogicError as err:
        raise TransactionReverted(f"reverted: {err.message}", revert_data=str(err.data)) from err
