"""A URL's chain id asked again after ``recheck_after`` seconds: a URL refused for serving another chain is used again
once the operator fixed the node, and a node restarted as another chain between two requests is refused (real anvils
restarted on the same port, the client's clock stepped)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from chain.client import ChainClient
from chain.config import ChainConfig, LocalChain
from chain.devnet import Devnet, free_port, start_devnet
from chain.errors import ChainIdMismatch

pytestmark = pytest.mark.integration

CHAIN_ID = 31337
RECHECK_AFTER = 30.0  # the client's default


class SteppedClock:
    """The client's clock, moved on by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@contextmanager
def anvil_on(port: int, chain_id: int) -> Iterator[Devnet]:
    """An anvil of ``chain_id`` on ``port`` (held back anew: the one before it just left it)."""
    assert free_port(again=port) == port
    devnet = start_devnet(LocalChain(name="ethereum-local", chain_id=chain_id, port=port), port=port)
    try:
        yield devnet
    finally:
        devnet.stop()


def _client(port: int, clock: SteppedClock) -> ChainClient:
    config = ChainConfig(name="ethereum-local", chain_id=CHAIN_ID, rpc_urls=[f"http://127.0.0.1:{port}"])
    return ChainClient(config, timeout=2.0, clock=clock)


async def test_a_url_refused_for_another_chain_is_used_again_once_it_serves_the_right_one() -> None:
    """The URL served chain 1 and was refused; the operator restarted it as chain 31337. It stayed refused until
    the process restarted (the chain unusable from one misconfigured start); now it is asked again after
    ``recheck_after`` seconds and used."""
    port, clock = free_port(), SteppedClock()
    client = _client(port, clock)
    try:
        with anvil_on(port, 1):
            with pytest.raises(ChainIdMismatch) as caught:
                await client.connect()
            assert (caught.value.expected, caught.value.actual) == (CHAIN_ID, 1)
        with anvil_on(port, CHAIN_ID):
            with pytest.raises(ChainIdMismatch) as caught:
                await client.head()  # within the cool-down the refusal stands, the URL not asked
            assert caught.value.actual == 1
            assert (await client.health()).endpoints[0].chain_id_ok is False
            clock.now += RECHECK_AFTER
            assert await client.head() == 0
            health = await client.health()
            assert health.healthy
            assert health.endpoints[0].chain_id_ok is True
    finally:
        await client.close()


async def test_a_url_still_serving_another_chain_stays_refused_after_the_recheck() -> None:
    port, clock = free_port(), SteppedClock()
    client = _client(port, clock)
    try:
        with anvil_on(port, 1):
            with pytest.raises(ChainIdMismatch):
                await client.connect()
            clock.now += RECHECK_AFTER
            with pytest.raises(ChainIdMismatch) as caught:
                await client.head()  # asked again: still chain 1
            assert caught.value.actual == 1
            assert client.provider.endpoints[0].checked_at == clock.now
    finally:
        await client.close()


async def test_a_node_restarted_as_another_chain_between_two_requests_is_refused() -> None:
    """The node was restarted as chain 1 between two requests and no request failed (its keep-alive connection was
    replaced unseen): chain 1 was read as chain 31337 for as long as it ran. Now a URL's chain id is asked again on
    its first use ``recheck_after`` seconds after its last answer."""
    port, clock = free_port(), SteppedClock()
    client = _client(port, clock)
    try:
        with anvil_on(port, CHAIN_ID):
            await client.connect()
            checked_at = client.provider.endpoints[0].checked_at
            clock.now += RECHECK_AFTER / 2
            assert await client.head() == 0
            assert client.provider.endpoints[0].checked_at == checked_at, "not asked again within recheck_after"
        with anvil_on(port, 1):
            clock.now += RECHECK_AFTER / 2
            with pytest.raises(ChainIdMismatch) as caught:
                await client.head()
            assert (caught.value.expected, caught.value.actual) == (CHAIN_ID, 1)
            health = await client.health()
            assert not health.healthy
            assert health.endpoints[0].chain_id_ok is False
    finally:
        await client.close()
