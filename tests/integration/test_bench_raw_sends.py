"""bench.raw_sends on a real anvil: a burst of presigned full-block sends is waited out to its last receipt, although
anvil's automine leaves a ready transaction in its pool after a full block (foundry-rs/foundry#10122)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest
from eth_account import Account

from bench import raw_sends
from bench.raw_sends import _raw, _Rpc, transaction
from chain.config import LocalChain
from chain.devnet import Devnet, start_devnet
from chain.signers import devnet_account

pytestmark = pytest.mark.integration

CHAIN = LocalChain(name="raw-sends", chain_id=31_377, port=0)
SENDS = 200
#: each send burns ~821k gas (20,000 non-zero calldata bytes at the EIP-7623 floor): 36 fill a 30M-gas block
CALLDATA = "0x" + "ab" * 20_000


@pytest.fixture
def devnet() -> Iterator[Devnet]:
    node = start_devnet(CHAIN, port=0)
    try:
        yield node
    finally:
        node.stop()


def test_a_burst_of_full_blocks_is_mined_to_its_last_send(devnet: Devnet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(raw_sends, "MINED_WITHIN_SECONDS", 20.0)  # the old wait ran out here: one send never mined
    sender = devnet_account(0)
    sink = "0x000000000000000000000000000000000000dEaD"
    raws = [
        _raw(Account.sign_transaction(transaction(CHAIN.chain_id, n, sink, CALLDATA, 900_000), sender.key))
        for n in range(SENDS)
    ]

    async def burst() -> int:
        async with aiohttp.ClientSession() as session:
            rpc = _Rpc(session, devnet.rpc_url)
            hashes = await rpc.send_all(raws)
            await rpc.last_mined(hashes)
            await rpc.mined(hashes, "a full-block send")
            return int(await rpc("eth_getTransactionCount", [sender.address, "latest"]), 16)

    assert asyncio.run(burst()) == SENDS
