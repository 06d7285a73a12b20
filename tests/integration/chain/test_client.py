"""Clients: chain-id check, unreachable RPC, failover between URLs, health."""

from __future__ import annotations

import pytest

from chain.client import ChainClient
from chain.config import ChainConfig, LocalChain
from chain.devnet import Devnet, free_port, start_devnet
from chain.errors import ChainIdMismatch, RpcUnavailable
from tests.integration.chain.support import TcpProxy

pytestmark = pytest.mark.integration


async def test_chain_id_mismatch_is_refused(anvil: Devnet) -> None:
    client = ChainClient(ChainConfig(name="mainnet-by-mistake", chain_id=1, rpc_urls=[anvil.rpc_url]))
    with pytest.raises(ChainIdMismatch) as caught:
        await client.connect()
    assert (caught.value.expected, caught.value.actual) == (1, 31337)
    assert (await client.health()).endpoints[0].chain_id_ok is False
    await client.close()


async def test_unreachable_rpc_is_a_typed_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = ChainClient(ChainConfig(name="down", chain_id=31337, rpc_urls=[url]), timeout=2.0)
    with pytest.raises(RpcUnavailable):
        await client.connect()
    health = await client.health()
    assert not health.healthy
    assert health.endpoints[0].last_error is not None
    await client.close()


async def test_fails_over_to_the_second_url_and_back(anvil: Devnet) -> None:
    first, second = await TcpProxy(anvil.port).start(), await TcpProxy(anvil.port).start()
    config = ChainConfig(name="ethereum-local", chain_id=31337, rpc_urls=[first.url, second.url])
    client = await ChainClient(config, timeout=2.0).connect()
    try:
        assert client.provider.active_url == first.url
        await first.cut()
        for _ in range(3):
            assert await client.head() >= 0
        assert client.provider.active_url == second.url
        health = await client.health()
        assert health.healthy
        assert health.head_block == 0
        assert health.endpoints[0].last_error is not None
        await first.restore()
        await second.cut()
        assert await client.head() == 0  # back to the first URL
        assert client.provider.active_url == first.url
        assert (await client.health()).endpoints[1].last_error is not None
    finally:
        await client.close()
        await first.cut()
        await second.cut()


async def test_a_node_restarted_on_its_port_answers_the_next_request() -> None:
    """The pooled keep-alive connection to the node before its restart is found closing as the next request is
    written (aiohttp's "Can not write request body", nothing sent): that request failed, counted against the URL's
    breaker, and a chain of one URL answered it with RpcUnavailable. Now it goes out once more on a fresh
    connection."""
    port = free_port()
    first = start_devnet(LocalChain(name="ethereum-local", chain_id=31337, port=port), port=port)
    client = await ChainClient(first.config(), timeout=2.0).connect()
    second: Devnet | None = None
    try:
        assert await client.head() == 0
        first.stop()
        assert free_port(again=port) == port
        second = start_devnet(LocalChain(name="ethereum-local", chain_id=31337, port=port), port=port)
        assert await client.head() == 0
        endpoint = client.provider.endpoints[0]
        assert endpoint.last_error is None
        assert endpoint.breaker.fail_counter == 0
    finally:
        await client.close()
        first.stop()
        if second is not None:
            second.stop()


async def test_a_health_probe_neither_counts_in_nor_is_refused_by_the_breaker_real_traffic_uses(anvil: Devnet) -> None:
    """``health`` (behind the public ``/readyz`` and the admins' ``/health``) read the head block through the same
    breakers as the request path: probes failing against a node that refuses them (an RPC plan's 429s, an outage)
    opened the breaker, and borrowers' reads were refused for its reset period; and while real traffic had it open,
    the probe was refused too and called a node that answers down. Now a probe passes the breaker by."""
    proxy = await TcpProxy(anvil.port).start()
    config = ChainConfig(name="ethereum-local", chain_id=31337, rpc_urls=[proxy.url])
    client = await ChainClient(config, timeout=2.0, fail_max=3, reset_timeout=60.0).connect()
    breaker = client.provider.endpoints[0].breaker
    try:
        await proxy.cut()
        for _ in range(5):
            assert not (await client.health()).healthy
        assert (breaker.current_state, breaker.fail_counter) == ("closed", 0)
        assert client.provider.endpoints[0].last_error is not None  # what the probe met, for /health
        for _ in range(3):  # real traffic fails: its breaker opens
            with pytest.raises(RpcUnavailable):
                await client.head()
        assert breaker.current_state == "open"
        await proxy.restore()
        health = await client.health()
        assert health.healthy, health.last_error
        assert health.head_block == 0
        assert breaker.current_state == "open"  # the probe's answer neither closes it
    finally:
        await client.close()
        await proxy.cut()


async def test_an_rpc_url_s_path_never_reaches_an_error_s_text() -> None:
    """A hosted RPC URL carries its API key in its path; aiohttp's error for a refused answer quotes the whole URL, and
    an error's text reaches logs, the reconciliation runs auditors read and the append-only audit log. Both the error
    a caller gets and the endpoint's last error show the URL's origin alone."""
    from aiohttp import web

    async def refuse(_: web.Request) -> web.Response:
        return web.Response(status=429, text="slow down")

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/v2/sk_live_SUPERSECRETKEY?apikey=another"
    client = ChainClient(ChainConfig(name="hosted", chain_id=31337, rpc_urls=[url]), timeout=2.0)
    try:
        with pytest.raises(RpcUnavailable) as caught:
            await client.rpc("eth_blockNumber")
        said = str(caught.value)
        assert "429" in said, said  # what went wrong is still said
        assert f"http://127.0.0.1:{port}/…" in said, said
        assert "SUPERSECRETKEY" not in said, said
        assert "another" not in said, said
        last = (await client.health()).endpoints[0].last_error
        assert last is not None
        assert "SUPERSECRETKEY" not in last, last
    finally:
        await client.close()
        await runner.cleanup()
