"""Chaos under load (issue 18): three API processes on one real PostgreSQL and Redis, started by the tests, with
leases and claims of about 2 s. The default run holds one scenario end to end (``test_cluster.py``, a short load);
the others and the full load are ``@pytest.mark.slow`` (``make chaos`` runs them all)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

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
