"""Chaos under load (issue 18): three API processes on one real PostgreSQL and Redis, started by the tests, with
leases and claims of about 2 s. The default run holds one scenario end to end (``test_cluster.py``, a short load);
the others and the full load are ``@pytest.mark.slow`` (``make chaos`` runs them all)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

import pytest

from tests.support.cluster import ApiCluster, StartCluster, api_cluster
from tests.support.devnet import DeployedChain
from tests.support.services import RestartableRedis


@pytest.fixture(scope="module")
def chaos_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableRedis]:
    """A Redis of the module's own (a test may stop it and start it again at the same address)."""
    server = RestartableRedis(Path(tmp_path_factory.mktemp("chaos-redis")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package", autouse=True)
def session_chains_put_back(devnet_chains: dict[str, DeployedChain]) -> Iterator[None]:
    """The clusters open loans on the session's devnets: every chain goes back to its state before the chaos tests
    afterwards, so the tests that follow (the contract tests assert balances from the deployed state) see none of
    it, whatever order the suite runs in."""
    with ExitStack() as stack:
        for chain in devnet_chains.values():
            stack.enter_context(chain.snapshot())
        yield


@pytest.fixture(scope="module")
def start_cluster(
    devnet_chains: dict[str, DeployedChain],
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    chaos_redis: RestartableRedis,
) -> StartCluster:
    """The chaos modules' one way to a cluster: ``start_cluster(schema, settings)`` is three API processes on a fresh
    ``schema`` of the session's PostgreSQL (or of ``postgres_url``, a server of the test's own), the module's Redis
    and the session's devnets (or ``chains``), with the short leases of ``tests.support.cluster``."""

    shared = postgres_url

    def start(
        schema: str,
        settings: dict[str, str] | None = None,
        *,
        chains: dict[str, DeployedChain] | None = None,
        postgres_url: str | None = None,
    ) -> AbstractContextManager[ApiCluster]:
        return api_cluster(
            chains if chains is not None else devnet_chains,
            tmp_path_factory.mktemp(schema),
            postgres_url=postgres_url if postgres_url is not None else shared,
            schema=schema,
            redis_url=chaos_redis.url,
            settings=settings,
        )

    return start
