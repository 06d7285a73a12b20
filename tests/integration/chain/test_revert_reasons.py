"""What a simulation says of a revert on a real anvil, for the reverts of tokens that are not ours: a ``require``
string (USDC's and OpenZeppelin 4's ``ERC20: transfer amount exceeds allowance``), a ``Panic(0x11)`` and a bare
``revert()`` (WETH9's). None is in our artifacts: the accept's estimate (``estimate_gas``, whose revert the borrower
reads in the 422 ``chain-rejected`` problem) and the default job's and keeper's simulations (``revert_of``, which they
log) showed the node's JSON-RPC error as a Python dict; each now reads as a reason."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode

from aggregator.errors import ChainRejected
from chain.client import ChainClient
from chain.errors import TransactionReverted
from chain.relay import estimate_gas, revert_of, simulate

pytestmark = pytest.mark.integration

ALLOWANCE = "ERC20: transfer amount exceeds allowance"
SENDER = "0x" + "11" * 20
TOKEN = "0x" + "ab" * 20
TRANSFER_FROM = [
    {
        "type": "function",
        "name": "transferFrom",
        "inputs": [{"name": n, "type": t} for n, t in (("from", "address"), ("to", "address"), ("value", "uint256"))],
        "outputs": [{"name": "", "type": "bool"}],
        "stateMutability": "nonpayable",
    }
]


def reverting_with(data: bytes) -> str:
    """Runtime code that reverts with ``data`` whatever it is called with: CODECOPY the bytes after these twelve to
    memory 0, then REVERT(0, len)."""
    size = len(data).to_bytes(2, "big").hex()
    return "0x" + f"61{size}600c5f39" + f"61{size}5ffd" + data.hex()


CASES = [
    (bytes.fromhex("08c379a0") + encode(["string"], [ALLOWANCE]), f'Error("{ALLOWANCE}")'),
    (
        bytes.fromhex("4e487b71") + encode(["uint256"], [0x11]),
        "Panic(0x11: arithmetic operation results in underflow or overflow)",
    ),
    (b"", "execution reverted"),
]


@pytest.mark.parametrize(("revert_data", "reason"), CASES, ids=["require-string", "panic-0x11", "bare-revert"])
async def test_a_tokens_revert_reads_as_its_reason(client: ChainClient, revert_data: bytes, reason: str) -> None:
    await client.rpc("anvil_setCode", TOKEN, reverting_with(revert_data))
    request = {"from": SENDER, "to": TOKEN, "data": "0x23b872dd" + "00" * 96}

    assert await revert_of(client.provider, request) == reason  # what the default job and the keeper log
    with pytest.raises(TransactionReverted) as estimated:
        await estimate_gas(client.provider, request)
    assert str(estimated.value) == reason
    assert str(ChainRejected(str(estimated.value))) == f"the chain refused the loan: {reason}"  # the 422's detail

    token: Any = client.w3.eth.contract(address=client.w3.to_checksum_address(TOKEN), abi=TRANSFER_FROM)
    with pytest.raises(TransactionReverted) as simulated:
        await simulate(token.functions.transferFrom(SENDER, SENDER, 1), SENDER)
    assert str(simulated.value) == reason  # the contract function's simulation (the accept's) reads the same
