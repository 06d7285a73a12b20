"""Starting the platform's processes is the dearest part of the accept saga's and the loans ledger's end-to-end
tests (issue 11): the two modules share one platform (``tests.support.saga``), torn down after the e2e package."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform
from tests.support.saga import saga_platform


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
