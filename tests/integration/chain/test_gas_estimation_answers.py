"""What anvil answers ``eth_estimateGas`` for a call the lifecycle submits, as ``GasEstimationFailed.reverts`` reads
it: a revert is one; the call out of gas at the node's cap, an invalid opcode and a sender short of funds are not
(they say nothing sure of a contract's refusal, so a payment's record is tried again rather than refused for good)."""

from __future__ import annotations

import pytest
from eth_utils.address import to_checksum_address

from chain.client import ChainClient
from chain.errors import GasEstimationFailed
from chain.transactions import Call
from chain.types import Wei
from store.chain import SqlChainStore
from tests.integration.chain.support import deploy_token, holder, manager

pytestmark = pytest.mark.integration

CODE_AT = to_checksum_address("0x00000000000000000000000000000000c0de0001")


async def test_a_revert_reverts(client: ChainClient, sqlite_store: SqlChainStore) -> None:
    async with manager(client, sqlite_store) as txs:
        token = await deploy_token(txs)
        with pytest.raises(GasEstimationFailed) as caught:
            await txs.submit("too-much", Call.function(token, "transfer", holder(2), 10**18))
    assert caught.value.reverts


@pytest.mark.parametrize(
    ("code", "said"),
    [("0x5b600056", "Out of gas"), ("0xfe", "EVM error InvalidFEOpcode")],
    ids=["a loop out of gas at the cap", "an invalid opcode"],
)
async def test_a_call_anvil_cannot_estimate_does_not_revert(
    client: ChainClient, sqlite_store: SqlChainStore, code: str, said: str
) -> None:
    await client.rpc("anvil_setCode", CODE_AT, code)
    async with manager(client, sqlite_store) as txs:
        with pytest.raises(GasEstimationFailed) as caught:
            await txs.submit("cannot-estimate", Call(to=CODE_AT, data=b"\x01"))
    assert said in str(caught.value)
    assert not caught.value.reverts


async def test_a_sender_short_of_funds_does_not_revert(client: ChainClient, sqlite_store: SqlChainStore) -> None:
    await client.rpc("anvil_setCode", CODE_AT, "0x00")  # STOP: a contract that takes any call
    async with manager(client, sqlite_store) as txs:
        with pytest.raises(GasEstimationFailed) as caught:
            await txs.submit("too-rich", Call(to=CODE_AT, data=b"\x01", value=Wei(10**30)))
    assert "Insufficient funds" in str(caught.value)
    assert not caught.value.reverts
