"""The contract tests' own devnets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.devnet import DeployedChain, deployed_devnets


@pytest.fixture(scope="session")
def devnet_chains(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DeployedChain]]:
    """The three devnets as the session-wide fixture of the same name gives them, but deployed for the contract tests
    alone (``ethereum_local`` takes its chain from here too). These tests assert exact balances, allowances and
    totals from the deployed state: on the shared devnets, the loans and approvals other test modules leave behind
    change those, and whether they have run first depends on the test order (pytest-xdist gives each worker a share
    of the modules)."""
    with deployed_devnets(tmp_path_factory.mktemp("contract-deployments")) as chains:
        yield chains
