"""The ``admin`` fixture: ``creditmesh admin`` on the session's devnets, every chain reverted afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from api.bootstrap import write_chains_file
from tests.integration.governance.support import Admin
from tests.support.devnet import DeployedChain


@pytest.fixture
def admin(
    devnet_chains: dict[str, DeployedChain], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Admin]:
    """The admin CLI against the session's devnets, every chain reverted to its deployed state afterwards."""
    write_chains_file(tmp_path / "chains.json", [chain.config for chain in devnet_chains.values()])
    for chain in devnet_chains.values():
        chain.record.save(tmp_path / "deployments" / f"{chain.name}.json")
    with ExitStack() as stack:
        for chain in devnet_chains.values():
            stack.enter_context(chain.snapshot())
        yield Admin(devnet_chains, tmp_path, capsys)
