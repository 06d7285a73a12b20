"""Shared fixtures: real PostgreSQL, Redis and anvil devnets started by the test run itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.devnet import DeployedChain, deployed_devnets
from tests.support.services import RestartableRedis, fresh_schema, postgres_server, redis_server


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLAlchemy URL (``postgresql+psycopg://``) of a real PostgreSQL for this test session."""
    with postgres_server(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_schema(postgres_url: str) -> Callable[[str], str]:
    """A factory: ``postgres_schema("name")`` drops and creates that schema and returns a URL whose search path is
    it, so that each test module migrates or creates its tables in a database of its own."""
    return lambda schema: fresh_schema(postgres_url, schema)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis for this test session; flush what you write or use unique keys."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def devnet_chains(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DeployedChain]]:
    """The three devnets by name (``ethereum-local`` 31337, ``polygon-local`` 31338, ``arbitrum-local`` 31339),
    each an anvil on a free loopback port with the devnet profile deployed (``DeployedChain.record`` has the
    addresses, ``.contract(key)`` a web3 contract, ``.snapshot()`` reverts what a test did). Session-scoped:
    tests that change chain state should use ``with chain.snapshot():`` or the ``ethereum_local`` fixture."""
    with deployed_devnets(tmp_path_factory.mktemp("deployments")) as chains:
        yield chains


@pytest.fixture
def ethereum_local(devnet_chains: dict[str, DeployedChain]) -> Iterator[DeployedChain]:
    """The 31337 devnet, reverted to its deployed state after the test."""
    chain = devnet_chains["ethereum-local"]
    with chain.snapshot():
        yield chain


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    """A Redis of the test's own that the test stops and starts again at the same address."""
    server = RestartableRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
