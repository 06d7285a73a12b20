"""``GasEstimationFailed.reverts``: what nodes answer ``eth_estimateGas`` for a call that reverts (the contract refuses
it: a payment's record refused for good) against what they answer when they cannot estimate it for another reason
(tried again later). The anvil answers are what anvil 1.x sends (asked on a devnet); the others are the nodes'
documented or reported forms."""

from __future__ import annotations

import pytest

from chain.errors import GasEstimationFailed

PREFIX = "gas estimate failed on ethereum-local: "

REVERTS = {
    "anvil, a bare revert()": ("execution reverted", "0x"),
    "geth, a require message": ("execution reverted: Dai/insufficient-balance", "0x08c379a0" + "00" * 96),
    "erigon, a revert without data": ("execution reverted", None),
    "besu": ("Execution reverted", "0x"),
    "openethereum, older nethermind": ("VM execution error.", "Reverted 0x08c379a0"),
    "ganache": ("VM Exception while processing transaction: revert not owner", None),
    "hardhat, a reason string": ("VM Exception while processing transaction: reverted with reason string 'x'", None),
    "hardhat, a custom error": ("VM Exception while processing transaction: reverted with custom error 'Nope()'", None),
    "hardhat, no reason": ("Transaction reverted without a reason string", None),
    "hardhat, no reason inferred": ("Transaction reverted and Hardhat couldn't infer the reason.", None),
}

NOT_REVERTS = {
    "anvil, out of gas at the cap": ("Out of gas: gas required exceeds allowance: 30000000", None),
    "anvil, the sender short of funds": ("Insufficient funds for gas * price + value", None),
    "anvil, an invalid opcode": ("EVM error InvalidFEOpcode", None),
    "anvil, funds for the fee": ("EVM error LackOfFundForMaxFee { fee: 1, balance: 0 }", None),
    "geth, out of gas": ("gas required exceeds allowance (21000)", None),
    "old geth, out of gas or failing": ("gas required exceeds allowance or always failing transaction", None),
    "geth, the sender short of funds": ("insufficient funds for transfer", None),
    "hardhat, an invalid opcode": ("VM Exception while processing transaction: invalid opcode", None),
    "openethereum, another VM error": ("VM execution error.", "Bad instruction fe"),
    "a provider's rate limit": ("rate limit exceeded", None),
    "a node's internal error": ("internal error", None),
}


@pytest.mark.parametrize(("message", "data"), list(REVERTS.values()), ids=list(REVERTS))
def test_a_revert_is_said_to_revert(message: str, data: str | None) -> None:
    assert GasEstimationFailed(PREFIX + message, revert_data=data).reverts


@pytest.mark.parametrize(("message", "data"), list(NOT_REVERTS.values()), ids=list(NOT_REVERTS))
def test_a_call_not_estimated_for_another_reason_is_not_said_to_revert(message: str, data: str | None) -> None:
    assert not GasEstimationFailed(PREFIX + message, revert_data=data).reverts
