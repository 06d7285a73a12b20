"""Clients against URLs that answer HTTP 200 with something that is not a JSON-RPC answer (a stub on a loopback port
beside a real anvil): the URL's failure, counted by its breaker and failed over; a chain whose every URL answers so
is ``RpcUnavailable``; health reports it and never raises; a node restarted as another chain is refused."""

from __future__ import annotations

from typing import Any

import pytest

from chain.client import ChainClient
from chain.config import ChainConfig, LocalChain
from chain.devnet import Devnet, free_port, start_devnet
from chain.errors import ChainError, ChainIdMismatch, RpcBadAnswer, RpcUnavailable
from tests.support.bad_rpc import BAD_BODIES, Answer, bad_rpc

pytestmark = pytest.mark.integration

CHAIN_ID = 31337


def _null(request: dict[str, Any]) -> Any:
    return {"jsonrpc": "2.0", "id": request["id"], "result": None}


def _malformed(request: dict[str, Any]) -> Any:
    return {"jsonrpc": "2.0", "id": request["id"], "result": {"number": "zz", "timestamp": "0x1"}}


@pytest.mark.parametrize("body", list(BAD_BODIES))
async def test_a_url_answering_garbage_fails_over_to_the_next(anvil: Devnet, body: str) -> None:
    async with bad_rpc(CHAIN_ID, BAD_BODIES[body]) as stub:
        config = ChainConfig(name="ethereum-local", chain_id=CHAIN_ID, rpc_urls=[stub.url, anvil.rpc_url])
        client = ChainClient(config, timeout=2.0, fail_max=3)
        try:
            await client.rpc("evm_mine")  # the anvil's head is 1; the stub never answers a block number
            assert await client.head() == 1
            garbage, node = client.provider.endpoints
            assert stub.asked == ["eth_chainId", "evm_mine"]  # asked once, then never again: the anvil answers
            assert client.provider.active_url == anvil.rpc_url
            assert garbage.breaker.fail_counter == 1
            assert garbage.last_error is not None
            assert garbage.last_error.startswith("RpcBadAnswer: ")
            assert node.last_ok_at is not None
            assert node.last_error is None
        finally:
            await client.close()


@pytest.mark.parametrize("body", ["html", "truncated", "not JSON-RPC"])
async def test_a_batch_answered_with_garbage_fails_over_to_the_next(anvil: Devnet, body: str) -> None:
    async with bad_rpc(CHAIN_ID, BAD_BODIES[body]) as stub:
        config = ChainConfig(name="ethereum-local", chain_id=CHAIN_ID, rpc_urls=[stub.url, anvil.rpc_url])
        client = ChainClient(config, timeout=2.0)
        try:
            assert await client.batch(("eth_chainId", []), ("eth_blockNumber", [])) == [hex(CHAIN_ID), "0x0"]
            assert stub.asked == ["eth_chainId", "batch"]
            assert client.provider.endpoints[0].breaker.fail_counter == 1
        finally:
            await client.close()


async def test_a_chain_whose_every_url_answers_garbage_is_unavailable() -> None:
    async with bad_rpc(CHAIN_ID) as first, bad_rpc(CHAIN_ID, BAD_BODIES["empty"]) as second:
        config = ChainConfig(name="ethereum-local", chain_id=CHAIN_ID, rpc_urls=[first.url, second.url])
        client = ChainClient(config, timeout=2.0, fail_max=2)
        try:
            with pytest.raises(RpcUnavailable) as caught:
                await client.head()
            assert isinstance(caught.value.__cause__, RpcBadAnswer)
            assert "an empty body" in str(caught.value)
            with pytest.raises(RpcUnavailable):
                await client.head()  # the second failure of each URL opens its breaker
            assert [e.breaker.current_state for e in client.provider.endpoints] == ["open", "open"]
            assert ["RpcBadAnswer" in str(e.last_error) for e in client.provider.endpoints] == [True, True]
        finally:
            await client.close()


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (BAD_BODIES["html"], "RpcBadAnswer"),
        (BAD_BODIES["empty"], "an empty body"),
        (_null, "BlockNotFound"),
        (_malformed, "ValueError"),
    ],
    ids=["html", "empty", "null block", "malformed block"],
)
async def test_health_reports_a_chain_that_answers_badly(answer: Answer, error: str) -> None:
    async with bad_rpc(CHAIN_ID, answer) as stub:
        client = ChainClient(ChainConfig(name="ethereum-local", chain_id=CHAIN_ID, rpc_urls=[stub.url]), timeout=2.0)
        try:
            health = await client.health()
            assert not health.healthy
            assert health.head_block is None
            assert health.lag_seconds is None
            assert health.last_error is not None
            assert error in health.last_error
            with pytest.raises(ChainError):  # nor is a block number of another shape taken for one
                await client.head()
        finally:
            await client.close()


async def test_a_node_restarted_as_another_chain_is_refused() -> None:
    port = free_port()
    first = start_devnet(LocalChain(name="ethereum-local", chain_id=CHAIN_ID, port=port), port=port)
    client = await ChainClient(first.config(), timeout=2.0).connect()
    second: Devnet | None = None
    try:
        assert await client.head() == 0
        first.stop()
        with pytest.raises(RpcUnavailable):
            await client.head()
        assert free_port(again=port) == port
        second = start_devnet(LocalChain(name="ethereum-local", chain_id=1, port=port), port=port)
        with pytest.raises(ChainIdMismatch) as caught:
            await client.head()  # checked again before its first use since it failed: never read
        assert (caught.value.expected, caught.value.actual) == (CHAIN_ID, 1)
        health = await client.health()
        assert not health.healthy
        assert health.endpoints[0].chain_id_ok is False
        assert health.last_error is not None
        assert "serves chain id 1" in health.last_error
    finally:
        await client.close()
        first.stop()
        if second is not None:
            second.stop()
