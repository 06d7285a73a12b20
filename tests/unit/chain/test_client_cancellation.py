"""An endpoint's breaker counts only what the endpoint does: a caller's cancellation or deadline never counts
against it, its own timeout does; many cancelled calls leave nothing held (the web3 7.16 session lock wedge)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from chain.client import ChainClient, Endpoint, FailoverProvider
from chain.config import ChainConfig
from chain.devnet import free_port
from chain.errors import RpcUnavailable

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="session")]

CHAIN_ID = 31337


class SlowNode:
    """A loopback JSON-RPC server answering ``eth_chainId`` / ``eth_blockNumber`` after ``delay`` seconds."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    async def _answer(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        await asyncio.sleep(self.delay)
        items = body if isinstance(body, list) else [body]
        answers = [
            {"jsonrpc": "2.0", "id": item["id"], "result": hex(CHAIN_ID if item["method"] == "eth_chainId" else 7)}
            for item in items
        ]
        return web.json_response(answers if isinstance(body, list) else answers[0])


@pytest.fixture
async def node() -> AsyncIterator[SlowNode]:
    slow = SlowNode()
    app = web.Application()
    app.router.add_post("/", slow._answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", slow.port).start()
    yield slow
    await runner.cleanup()


async def test_a_cancelled_call_does_not_count_against_the_endpoint(node: SlowNode) -> None:
    client = await ChainClient(ChainConfig(name="slow", chain_id=CHAIN_ID, rpc_urls=[node.url]), fail_max=2).connect()
    endpoint = client.provider.endpoints[0]
    try:
        node.delay = 0.3
        for _ in range(5):  # more than fail_max cancellations, each mid-request
            call = asyncio.create_task(client.head())
            await asyncio.sleep(0.05)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        for _ in range(5):  # a caller's own deadline is a cancellation too
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await client.head()
        assert endpoint.breaker.fail_counter == 0
        assert endpoint.breaker.current_state == "closed"
        assert endpoint.last_error is None
        node.delay = 0.0
        assert await client.head() == 7
        assert await client.batch(("eth_blockNumber", []), ("eth_chainId", [])) == ["0x7", hex(CHAIN_ID)]
    finally:
        await client.close()


async def test_the_endpoints_own_timeout_counts(node: SlowNode) -> None:
    provider = FailoverProvider([node.url], CHAIN_ID, timeout=0.1, fail_max=2)
    endpoint: Endpoint = provider.endpoints[0]
    try:
        await provider.make_request("eth_chainId", [])  # type: ignore[arg-type]  # verified while fast
        node.delay = 0.5
        for _ in range(2):
            with pytest.raises(RpcUnavailable):
                await provider.make_request("eth_blockNumber", [])  # type: ignore[arg-type]
        assert endpoint.breaker.current_state == "open"
        assert str(endpoint.last_error).startswith("TimeoutError")
    finally:
        await provider.disconnect()


async def test_hundreds_of_cancelled_calls_leave_nothing_held(node: SlowNode) -> None:
    # the endpoint's own timeout well above what 300 exchanges with the node in this loop take on a loaded machine
    # (one of them timing out would count, as it should: not what this test is about)
    client = await ChainClient(ChainConfig(name="slow", chain_id=CHAIN_ID, rpc_urls=[node.url]), timeout=10.0).connect()
    try:
        node.delay = 0.2
        calls = [asyncio.create_task(client.head()) for _ in range(300)]
        await asyncio.sleep(0.02)
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        node.delay = 0.0
        async with asyncio.timeout(5):  # wedged, this would hang until the test's timeout
            assert await asyncio.gather(*(client.head() for _ in range(30))) == [7] * 30
        assert client.provider.endpoints[0].breaker.fail_counter == 0
    finally:
        await client.close()
