"""Starting the platform's processes (8-10 s each on this 2-core machine) is the dearest part of an end-to-end
module's setup, so modules with the same settings share one, torn down after the e2e package:

- ``shared_platform``: ``running_platform``'s defaults (SQLite, the one simulated bank, no background workers), for
  the modules that need nothing else (walking skeleton, screening and scoring, repayments, no 500s). Their tests
  onboard borrowers of their own and read the simulated lender's counters as before/after differences, so they hold
  in any order. A module that changes settings, restarts or stops a process, or fuzzes as an admin (who can revoke
  other borrowers' keys) starts its own.
- ``ledger_platform``: the accept saga's and the loans ledger's (issue 11; ``tests.support.saga``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform, running_platform
from tests.support.saga import saga_platform


@pytest.fixture(scope="package")
def shared_platform(
    devnet_chains: dict[str, DeployedChain], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    with running_platform(devnet_chains, tmp_path_factory.mktemp("shared-platform")) as running:
        yield running


@pytest.fixture(scope="package")
def ledger_platform(
    devnet_chains: dict[str, DeployedChain],
    tmp_path_factory: pytest.TempPathFactory,
    postgres_schema: Callable[[str], str],
) -> Iterator[RunningPlatform]:
    """Started armed at the kill point ``locked`` (the crash test's first point: a restart saved); every other test
    disarms it first (``tests.support.saga.disarmed``)."""
    url = postgres_schema("accept_saga")
    with saga_platform(devnet_chains, tmp_path_factory.mktemp("saga"), url, kill_at="locked") as running:
        yield running
