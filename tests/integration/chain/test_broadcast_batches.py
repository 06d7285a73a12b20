"""Broadcasts grouped into JSON-RPC batch requests, on a real anvil behind a recording HTTP proxy: each element's
answer reaches its own caller and is read as a single send's ("already known", "nonce too low", underpriced,
refused), and a node that refuses batches gets the transactions one by one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from web3.types import RPCEndpoint

from chain.client import ChainClient
from chain.config import ChainConfig
from chain.devnet import LOOPBACK, Devnet, free_port
from chain.errors import TransactionRejected
from chain.fees import GWEI
from chain.signers import Role, devnet_signer
from chain.transactions import Call, LifecycleSettings, TransactionManager
from chain.transactions._broadcasts import Broadcasts
from chain.transactions._tracked import _KNOWN, _NONCE_USED, _UNDERPRICED
from store.chain import CONFIRMED, SqlChainStore
from tests.integration.chain.support import miner

pytestmark = pytest.mark.integration

DEAD = "0x000000000000000000000000000000000000dEaD"


class RecordingProxy:
    """An HTTP JSON-RPC proxy in front of anvil that records each POST's ``eth_sendRawTransaction`` count and, when
    ``refuse_batches``, answers every batch with one error object, as nodes without batch support do."""

    def __init__(self, target: str, *, refuse_batches: bool = False) -> None:
        self.target, self.refuse_batches = target, refuse_batches
        self.port = free_port()
        self.sends_per_post: list[int] = []  # eth_sendRawTransaction elements of each POST that carried any
        self.batches_refused = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def start(self) -> RecordingProxy:
        app = web.Application()
        app.router.add_post("/", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()
        self._session = aiohttp.ClientSession()
        return self

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        document = json.loads(body)
        calls = document if isinstance(document, list) else [document]
        sends = sum(1 for call in calls if call.get("method") == "eth_sendRawTransaction")
        if isinstance(document, list) and self.refuse_batches:
            self.batches_refused += 1
            refusal = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch not supported"}}
            return web.json_response(refusal)
        if sends:
            self.sends_per_post.append(sends)
        assert self._session is not None
        async with self._session.post(self.target, data=body, headers={"Content-Type": "application/json"}) as up:
            return web.Response(body=await up.read(), content_type="application/json")

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()


async def _through_proxy(anvil: Devnet, *, refuse_batches: bool = False) -> tuple[RecordingProxy, ChainClient]:
    proxy = await RecordingProxy(anvil.config().rpc_urls[0], refuse_batches=refuse_batches).start()
    config = ChainConfig(name=anvil.name, chain_id=anvil.chain_id, rpc_urls=[proxy.url])
    return proxy, await ChainClient(config, timeout=5.0).connect()


@pytest.fixture
async def direct(anvil: Devnet) -> AsyncIterator[ChainClient]:
    chain_client = await ChainClient(anvil.config(), timeout=5.0).connect()
    yield chain_client
    await chain_client.close()


def _transfer(nonce: int, value: int = 1, max_fee: int = 3 * GWEI, tip: int = GWEI) -> str:
    raw = devnet_signer(Role.OPERATOR).sign_transaction(
        {
            "type": 2,
            "chainId": 31337,
            "nonce": nonce,
            "to": DEAD,
            "value": value,
            "gas": 21_000,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip,
            "data": b"",
        }
    )
    return "0x" + raw.hex()


async def test_each_element_of_a_batch_answers_as_its_single_send_would(anvil: Devnet, direct: ChainClient) -> None:
    """One batch POST of five transactions: a new one, one the node already has, one under a mined nonce, a
    same-fee replacement and one the sender cannot pay for; each caller gets its own answer, in its own terms."""
    await direct.rpc("evm_setAutomine", False)
    await direct.rpc("eth_sendRawTransaction", _transfer(0))
    await direct.rpc("evm_mine")  # nonce 0 used
    held = _transfer(1)
    await direct.rpc("eth_sendRawTransaction", held)  # pending under nonce 1
    proxy, client = await _through_proxy(anvil)
    try:
        broadcasts = Broadcasts(client.provider)
        raws = [_transfer(2), held, _transfer(0, value=2), _transfer(1, value=2), _transfer(3, value=10**30)]
        answers = await asyncio.gather(*(broadcasts.send(raw) for raw in raws))
    finally:
        await client.close()
        await proxy.stop()
    assert proxy.sends_per_post == [5]  # one POST for all five
    messages = [str(answer.get("error", {}).get("message", "")).lower() for answer in answers]
    assert "error" not in answers[0]
    assert answers[0]["result"].startswith("0x")
    assert any(token in messages[1] for token in _KNOWN), messages[1]
    assert any(token in messages[2] for token in _NONCE_USED), messages[2]
    assert any(token in messages[3] for token in _UNDERPRICED), messages[3]
    assert "insufficient funds" in messages[4], messages[4]


def _manager(client: ChainClient, store: SqlChainStore, **options: Any) -> TransactionManager:
    settings = LifecycleSettings(confirmations=1, poll_interval=0.05, stuck_after=30.0)
    return TransactionManager(client, devnet_signer(Role.DEPLOYER), store, settings=settings, **options)


async def test_concurrent_submits_go_out_in_batches_and_each_intent_settles_as_alone(
    anvil: Devnet, direct: ChainClient, sqlite_store: SqlChainStore
) -> None:
    """30 concurrent transfers through the lifecycle: broadcast in a few POSTs. Three were broadcast by someone
    else first (the node answers "already known": accepted), one the sender cannot pay for is refused alone and the
    manager fills its nonce: every other intent confirmed once, no nonce gap or duplicate."""

    async def broadcast_first(key: str) -> None:
        if key.startswith("known:"):
            intent = await sqlite_store.get_intent(key)
            assert intent is not None
            # the watcher may have broadcast it already (the node then says so): the answer does not matter here
            await direct.provider.make_request(RPCEndpoint("eth_sendRawTransaction"), [intent.attempts[-1].raw])

    proxy, client = await _through_proxy(anvil)
    keys = [f"transfer:{i}" for i in range(26)] + [f"known:{i}" for i in range(3)]
    try:
        async with _manager(client, sqlite_store, on_signed=broadcast_first) as txs, miner(direct, 0.1):
            outcomes = await asyncio.gather(
                txs.submit("poor", Call.transfer(DEAD, 10**30)),
                *(txs.submit(key, Call.transfer(DEAD, 1)) for key in keys),
                return_exceptions=True,
            )
            assert isinstance(outcomes[0], TransactionRejected)
            assert [o for o in outcomes[1:] if isinstance(o, BaseException)] == []
            receipts = await asyncio.gather(*(txs.wait(key, within=30) for key in keys))
    finally:
        await client.close()
        await proxy.stop()
    assert all(receipt.status == CONFIRMED for receipt in receipts)
    poor = await sqlite_store.get_intent("poor")
    assert poor is not None
    assert poor.nonce is not None
    # the refused one's nonce, held back by the later ones, was filled by the manager's transfer to itself
    assert sorted([*(receipt.nonce for receipt in receipts), poor.nonce]) == list(range(30))
    assert int(await direct.rpc("eth_getTransactionCount", devnet_signer(Role.DEPLOYER).address, "latest"), 16) == 30
    assert max(proxy.sends_per_post) > 1  # batched ...
    assert sum(proxy.sends_per_post) >= 30
    assert len(proxy.sends_per_post) < 30


async def test_a_node_that_refuses_batches_gets_the_transactions_one_by_one(
    anvil: Devnet, direct: ChainClient, sqlite_store: SqlChainStore
) -> None:
    proxy, client = await _through_proxy(anvil, refuse_batches=True)
    try:
        async with _manager(client, sqlite_store) as txs, miner(direct, 0.1):
            keys = [f"transfer:{i}" for i in range(20)]
            await asyncio.gather(*(txs.submit(key, Call.transfer(DEAD, 1)) for key in keys))
            receipts = await asyncio.gather(*(txs.wait(key, within=30) for key in keys))
    finally:
        await client.close()
        await proxy.stop()
    assert sorted(receipt.nonce for receipt in receipts) == list(range(20))
    assert proxy.batches_refused == 1  # refused once, not asked again
    assert set(proxy.sends_per_post) == {1}
    assert len(proxy.sends_per_post) >= 20
