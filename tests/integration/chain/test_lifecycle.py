"""The transaction lifecycle on real anvils: concurrency, idempotency, typed failures, outages, replacement."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from web3.types import RPCEndpoint

from chain.client import ChainClient
from chain.config import ChainConfig
from chain.devnet import Devnet
from chain.errors import (
    ConfirmationTimeout,
    GasEstimationFailed,
    IntentConflict,
    RpcUnavailable,
    TransactionRejected,
    TransactionReverted,
)
from chain.signers import Role, devnet_signer
from chain.transactions import Call, LifecycleSettings, TransactionManager
from store.chain import CONFIRMED, SqlChainStore
from tests.integration.chain.support import (
    TcpProxy,
    chain_store,
    deploy_token,
    fresh_anvil,
    holder,
    manager,
    miner,
)

pytestmark = pytest.mark.integration

DEAD = "0x000000000000000000000000000000000000dEaD"


async def _nonce(client: ChainClient, role: Role) -> int:
    return int(await client.rpc("eth_getTransactionCount", devnet_signer(role).address, "latest"), 16)


async def _submit_with_retries(txs: TransactionManager, key: str, call: Call) -> None:
    """What a caller does after an outage: submit again under the same key, a bounded number of times."""
    for _ in range(50):
        try:
            await txs.submit(key, call)
            return
        except RpcUnavailable:
            await asyncio.sleep(0.1)
    raise AssertionError(f"{key} could not be submitted after the RPC came back")


async def test_500_concurrent_sends_per_chain_on_three_chains(tmp_path: object) -> None:
    """One process, three fresh chains, 500 concurrent mints each: every nonce once, no gap, all confirmed."""
    chains = [(31337, "ethereum-local"), (31338, "polygon-local"), (31339, "arbitrum-local")]
    with fresh_anvil(*chains[0]) as a, fresh_anvil(*chains[1]) as b, fresh_anvil(*chains[2]) as c:
        store, engine = chain_store(f"sqlite:///{tmp_path}/chain.db")
        clients = [await ChainClient(d.config()).connect() for d in (a, b, c)]
        try:

            async def run(client: ChainClient) -> None:
                async with manager(client, store) as txs, miner(client, 0.1):
                    token = await deploy_token(txs, f"{client.name}:token")
                    keys = [f"{client.name}:mint:{i}" for i in range(500)]
                    calls = [Call.function(token, "mint", holder(i), i + 1) for i in range(500)]
                    await asyncio.gather(*(txs.submit(k, call) for k, call in zip(keys, calls, strict=True)))
                    receipts = await asyncio.gather(*(txs.wait(k, within=120) for k in keys))
                    assert all(r.status == CONFIRMED for r in receipts)
                    assert sorted(r.nonce for r in receipts) == list(range(1, 501))
                    assert await _nonce(client, Role.DEPLOYER) == 501
                    supply = int(
                        await client.rpc("eth_call", {"to": token.address, "data": "0x18160ddd"}, "latest"), 16
                    )
                    assert supply == sum(range(1, 501))

            await asyncio.gather(*(run(client) for client in clients))
        finally:
            for client in clients:
                await client.close()
            engine.dispose()


async def test_two_accounts_on_one_chain_proceed_in_parallel(client: ChainClient, pg_store: SqlChainStore) -> None:
    first, second = manager(client, pg_store, Role.DEPLOYER), manager(client, pg_store, Role.RELAYER)
    async with first, second, miner(client, 0.1):
        token = await deploy_token(first)
        submits = [
            txs.submit(f"{role}:{i}", Call.function(token, "mint", holder(i), 1))
            for txs, role in ((first, "a"), (second, "b"))
            for i in range(100)
        ]
        await asyncio.gather(*submits)
        receipts = await asyncio.gather(
            *(txs.wait(f"{role}:{i}", within=60) for txs, role in ((first, "a"), (second, "b")) for i in range(100))
        )
    blocks = {r.block_number for r in receipts[100:]} & {r.block_number for r in receipts[:100]}
    assert blocks, "the two accounts' transactions share blocks: neither waited for the other"
    assert sorted(r.nonce for r in receipts[100:]) == list(range(100))
    assert await _nonce(client, Role.RELAYER) == 100
    assert await _nonce(client, Role.DEPLOYER) == 101


async def test_submit_is_idempotent_and_refuses_a_different_call(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    async with manager(client, sqlite_store) as txs:
        token = await deploy_token(txs)
        call = Call.function(token, "mint", holder(1), 5)
        first = await txs.submit("mint-once", call)
        again = await txs.submit("mint-once", call)
        receipt = await txs.wait("mint-once", within=30)
        assert again.tx_hash == first.tx_hash == receipt.tx_hash
        assert (await txs.submit("mint-once", call)).status == CONFIRMED
        with pytest.raises(IntentConflict):
            await txs.submit("mint-once", Call.function(token, "mint", holder(1), 6))
    assert await _nonce(client, Role.DEPLOYER) == 2


async def test_a_wait_that_times_out_says_where_the_intent_is(client: ChainClient, sqlite_store: SqlChainStore) -> None:
    """Nothing is mined (automine off, no miner): the timeout names the intent's nonce, its newest attempt, that the
    node accepted it and that no block scanned so far holds it; once mined, the same wait returns it."""
    async with manager(client, sqlite_store) as txs:
        await client.rpc("evm_setAutomine", False)
        sent = await txs.submit("held", Call.transfer("0x000000000000000000000000000000000000dEaD", 1))
        with pytest.raises(ConfirmationTimeout) as timeout:
            await txs.wait("held", within=0.5)
        state = timeout.value.state
        assert state.startswith("still tracked: nonce 0, 1 attempt(s)"), state
        assert f"the newest {sent.tx_hash}" in state
        assert "accepted by the node" in state
        assert "not in blocks up to" in state
        assert "watcher is not running" not in state
        await client.rpc("evm_mine")
        await client.rpc("evm_setAutomine", True)
        assert (await txs.wait("held", within=30)).tx_hash == sent.tx_hash


async def test_reverted_transaction_and_failing_gas_estimate_are_typed(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    async with manager(client, sqlite_store) as txs:
        token = await deploy_token(txs)
        too_much = Call.function(token, "transfer", holder(2), 10**18)  # the deployer holds no tokens
        with pytest.raises(GasEstimationFailed) as estimate:
            await txs.submit("estimate-fails", too_much)
        assert estimate.value.decoded is not None
        assert estimate.value.decoded.startswith("ERC20InsufficientBalance")
        forced = Call.function(token, "transfer", holder(2), 10**18, gas=100_000)
        await txs.submit("reverts", forced)
        with pytest.raises(TransactionReverted) as reverted:
            await txs.wait("reverts", within=30)
        assert not isinstance(reverted.value, GasEstimationFailed)
        assert reverted.value.tx_hash is not None
        assert "ERC20InsufficientBalance" in str(reverted.value)
        stored = await sqlite_store.get_intent("estimate-fails")
        assert stored is not None
        assert stored.status == "failed"
        assert stored.nonce is None
    # the failed estimate consumed no nonce: deploy (0) and the reverted transfer (1)
    assert await _nonce(client, Role.DEPLOYER) == 2


async def test_rpc_outage_through_a_proxy_recovers_without_double_sends(
    anvil: Devnet, sqlite_store: SqlChainStore
) -> None:
    proxy = await TcpProxy(anvil.port).start()
    direct = await ChainClient(anvil.config()).connect()
    client = await ChainClient(
        ChainConfig(name=anvil.name, chain_id=anvil.chain_id, rpc_urls=[proxy.url]), timeout=1.0, reset_timeout=0.2
    ).connect()
    try:
        async with manager(client, sqlite_store) as txs, miner(direct, 0.5):
            token = await deploy_token(txs)
            calls = {f"mint:{i}": Call.function(token, "mint", holder(i), 1) for i in range(60)}
            keys = list(calls)
            await asyncio.gather(*(txs.submit(key, calls[key]) for key in keys[:30]))
            await proxy.cut()  # 30 sent and in flight; the next 30 meet the outage
            outcomes = await asyncio.gather(*(txs.submit(k, calls[k]) for k in keys[30:]), return_exceptions=True)
            assert all(isinstance(outcome, RpcUnavailable) for outcome in outcomes)
            await asyncio.sleep(0.3)
            assert txs.last_error is not None  # the watcher saw the outage too
            await proxy.restore()
            for key in keys[30:]:
                await _submit_with_retries(txs, key, calls[key])  # the caller retries with the same key
            receipts = await asyncio.gather(*(txs.wait(key, within=60) for key in calls))
        assert all(r.status == CONFIRMED for r in receipts)
        assert sorted(r.nonce for r in receipts) == list(range(1, 61))
        assert await _nonce(direct, Role.DEPLOYER) == 61  # nothing sent twice, no gap
    finally:
        await proxy.cut()
        await client.close()
        await direct.close()


async def test_failover_to_a_second_url_while_sending(anvil: Devnet, sqlite_store: SqlChainStore) -> None:
    first, second = await TcpProxy(anvil.port).start(), await TcpProxy(anvil.port).start()
    client = await ChainClient(
        ChainConfig(name=anvil.name, chain_id=anvil.chain_id, rpc_urls=[first.url, second.url]), timeout=3.0
    ).connect()
    try:
        async with manager(client, sqlite_store) as txs, miner(client, 0.1):
            token = await deploy_token(txs)
            batch = [txs.submit(f"mint:{i}", Call.function(token, "mint", holder(i), 1)) for i in range(40)]
            cut = asyncio.create_task(first.cut())
            await asyncio.gather(*batch, cut)
            receipts = await asyncio.gather(*(txs.wait(f"mint:{i}", within=60) for i in range(40)))
        assert sorted(r.nonce for r in receipts) == list(range(1, 41))
        assert client.provider.active_url == second.url
        assert await _nonce(client, Role.DEPLOYER) == 41
    finally:
        await client.close()
        await first.cut()
        await second.cut()


async def test_paused_mining_and_base_fee_spike_replace_the_stuck_transaction(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    async with manager(client, sqlite_store, stuck_after=0.3) as txs:
        token = await deploy_token(txs)
        await client.rpc("evm_setAutomine", False)
        sent = await txs.submit("stuck", Call.function(token, "mint", holder(1), 1))
        await client.rpc("anvil_setNextBlockBaseFeePerGas", hex(100 * 10**9))
        await client.rpc("evm_mine")  # a 100 gwei block: the 3 gwei transaction stays out
        assert await client.rpc("eth_getTransactionReceipt", sent.tx_hash) is None
        async with miner(client, 0.2):
            receipt = await txs.wait("stuck", within=30)
    stored = await sqlite_store.get_intent("stuck")
    assert stored is not None
    assert len(stored.attempts) >= 2
    assert receipt.tx_hash != sent.tx_hash
    assert receipt.nonce == sent.nonce == 1
    assert stored.attempts[-1].max_fee_per_gas >= stored.attempts[0].max_fee_per_gas * 9 // 8
    assert await _nonce(client, Role.DEPLOYER) == 2


async def _attempts(store: SqlChainStore, key: str, at_least: int) -> None:
    async with asyncio.timeout(10):
        while True:
            intent = await store.get_intent(key)
            if intent is not None and len(intent.attempts) >= at_least:
                return
            await asyncio.sleep(0.05)


async def test_rebroadcasts_answered_already_known_do_not_postpone_the_fee_bump(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    """A transaction the node keeps answering "already known" to, but never mines, is replaced ``stuck_after`` after
    it was first accepted: the rebroadcasts every ``rebroadcast_after`` used to restart that clock, so a transaction
    a node held (or had lost while still calling it known) was never bumped and held back every later nonce."""
    async with manager(client, sqlite_store, stuck_after=1.0, rebroadcast_after=0.1) as txs:
        await client.rpc("evm_setAutomine", False)  # nothing is mined: every rebroadcast is "already known"
        try:
            sent = await txs.submit("held", Call.transfer("0x000000000000000000000000000000000000dEaD", 1))
            await _attempts(sqlite_store, "held", 2)
        finally:
            await client.rpc("evm_setAutomine", True)
        await client.rpc("evm_mine")
        receipt = await txs.wait("held", within=20)
    assert receipt.tx_hash != sent.tx_hash  # the replacement was mined
    assert receipt.nonce == sent.nonce == 0


async def test_our_own_transaction_mined_before_the_submit_broadcasts_is_not_signed_again(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    """The watcher may broadcast a freshly signed attempt before the submit does, and the block may be mined before
    the submit's own broadcast: the node's "nonce too low" is then our transaction, not a nonce used outside the
    platform, and the intent must not be signed again under a new nonce (that would mint twice)."""

    async def broadcast_and_mine_first(key: str) -> None:
        if key != "mint-raced":
            return
        intent = await sqlite_store.get_intent(key)
        assert intent is not None
        # automine: mined at once (the watcher may have broadcast it already: then the node says so, harmlessly)
        await client.provider.make_request("eth_sendRawTransaction", [intent.attempts[0].raw])  # type: ignore[arg-type]

    async with manager(client, sqlite_store) as deployer:
        token = await deploy_token(deployer)
    settings = LifecycleSettings(confirmations=1, poll_interval=0.05, stuck_after=30.0)
    txs = TransactionManager(
        client, devnet_signer(Role.DEPLOYER), sqlite_store, settings=settings, on_signed=broadcast_and_mine_first
    )
    async with txs:
        receipt = await txs.submit_and_wait("mint-raced", Call.function(token, "mint", holder(3), 7), within=30)
    assert receipt.status == CONFIRMED
    assert receipt.nonce == 1
    assert await _nonce(client, Role.DEPLOYER) == 2  # one mint, not two
    balance = await client.rpc(
        "eth_call", {"to": token.address, "data": token.encode_abi("balanceOf", [holder(3)])}, "latest"
    )
    assert int(str(balance), 16) == 7


async def test_a_pooled_transaction_whose_rebroadcast_is_refused_in_a_fee_spike_stays_followed(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    """The base fee jumps past the transaction's max fee while it waits in the pool: anvil answers its rebroadcast
    "max fee per gas less than block base fee". That was taken for a refusal before the mempool — the intent failed
    and its nonce was handed to the next intent — while the first transaction could still be mined."""
    async with manager(client, sqlite_store, rebroadcast_after=0.1, stuck_after=60.0) as txs:
        await client.rpc("evm_setAutomine", False)
        first = await txs.submit("pooled", Call.transfer(DEAD, 1))
        await client.rpc("anvil_setNextBlockBaseFeePerGas", hex(10**13))
        await client.rpc("evm_mine")  # a 10,000 gwei block: the 3 gwei transaction waits in the pool
        await asyncio.sleep(0.8)  # several rebroadcasts, each refused
        stored = await sqlite_store.get_intent("pooled")
        assert stored is not None
        assert stored.status == "sent", stored.error
        resent = await client.provider.make_request(RPCEndpoint("eth_sendRawTransaction"), [stored.attempts[0].raw])
        assert "base fee" in str(resent.get("error")), resent  # what the rebroadcasts met
        await client.rpc("anvil_setNextBlockBaseFeePerGas", hex(10**8))  # the spike ends
        await client.rpc("evm_setAutomine", True)
        await client.rpc("evm_mine")
        assert (await txs.wait("pooled", within=5)).tx_hash == first.tx_hash
        second = await txs.submit("next", Call.transfer(DEAD, 2))
        assert second.nonce == 1  # nonce 0 was not handed out again
        assert (await txs.wait("next", within=5)).nonce == 1


async def test_a_restart_on_sqlite_hands_out_again_the_nonce_of_a_refused_transaction(
    client: ChainClient, sqlite_store: SqlChainStore
) -> None:
    """An underfunded account's transaction is refused ("insufficient funds") and its nonce released; the process
    restarts. Start-up floored the counter at the highest nonce of any intent, the refused one's too, which dropped
    the released nonce: every later transaction waited behind a nonce nobody sends."""
    async with manager(client, sqlite_store) as txs:
        await txs.submit_and_wait("paid", Call.transfer(DEAD, 1), within=30)
        with pytest.raises(TransactionRejected):
            await txs.submit("unfunded", Call.transfer(DEAD, 10**30))
    async with manager(client, sqlite_store) as txs:  # restarted on the same database
        after = await txs.submit("after-restart", Call.transfer(DEAD, 2))
        assert after.nonce == 1
        assert (await txs.wait("after-restart", within=5)).status == CONFIRMED


async def test_a_transaction_a_reorg_puts_back_in_the_pool_is_not_dropped_as_nonce_used(
    client: ChainClient, sqlite_store: SqlChainStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our transaction is mined while the watcher's scan cannot read blocks; its rebroadcast meets "nonce too low";
    a one-block reorg then takes the block back. That answer's mark was never cleared, so the receipt re-check
    (no receipt: the transaction is pending again) declared the intent dropped, its nonce "used by another
    transaction", and the same transaction was then mined again unfollowed."""
    rpc = client.rpc
    scan_blocked = False

    async def behind(method: str, *params: Any) -> Any:
        if scan_blocked and method == "eth_getBlockReceipts":
            raise RpcUnavailable("the scan is behind")
        return await rpc(method, *params)

    monkeypatch.setattr(client, "rpc", behind)
    async with manager(client, sqlite_store, confirmations=3, rebroadcast_after=0.1) as txs:
        await client.rpc("evm_setAutomine", False)
        sent = await txs.submit("reorged", Call.transfer(DEAD, 1))
        before = await client.rpc("evm_snapshot")
        scan_blocked = True
        await client.rpc("evm_mine")  # mined, unseen by the scan
        await asyncio.sleep(0.5)  # rebroadcasts: "nonce too low"
        await client.rpc("evm_revert", before)  # the block is gone
        scan_blocked = False
        await asyncio.sleep(0.5)  # rounds that re-check its receipts: none
        stored = await sqlite_store.get_intent("reorged")
        assert stored is not None
        assert stored.status == "sent", stored.error
        for _ in range(3):
            await client.rpc("evm_mine")
        receipt = await txs.wait("reorged", within=5)
    assert receipt.tx_hash == sent.tx_hash
