"""The transaction manager's settled outcomes are bounded (issue 18 item 3): with room for two, after five
confirmed transactions it holds two, and a wait on an outcome it dropped is answered from the intent's record."""

from __future__ import annotations

import pytest

from chain.client import ChainClient
from chain.transactions import Call
from store.chain import CONFIRMED, SqlChainStore
from tests.integration.chain.support import deploy_token, holder, manager, miner

pytestmark = pytest.mark.integration


async def test_outcomes_kept_are_bounded_and_older_ones_come_from_the_record(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    async with manager(client, sqlite_store, settled_capacity=2) as txs, miner(client, 0.1):
        token = await deploy_token(txs)
        keys = [f"mint:{i}" for i in range(5)]
        receipts = [
            await txs.submit_and_wait(key, Call.function(token, "mint", holder(i), 1), within=60)
            for i, key in enumerate(keys)
        ]
        assert len(txs._settled) == 2  # the bound is what this test is about
        assert txs._settled.get(keys[0]) is None
        again = await txs.wait(keys[0], within=10)  # dropped from memory: read from the stored intent
        assert (again.status, again.tx_hash, again.nonce) == (CONFIRMED, receipts[0].tx_hash, receipts[0].nonce)
        assert (await txs.wait(keys[-1], within=10)).tx_hash == receipts[-1].tx_hash
