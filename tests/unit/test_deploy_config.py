"""The deployment profiles' per-chain configuration files."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.signers import devnet_account
from contracts.deploy_config import (
    CONFIG_DIR,
    DEVNET_CONFIG,
    DeployConfigError,
    load_deploy_config,
    production_delay_refusal,
)

pytestmark = pytest.mark.unit


def test_the_devnet_file_names_the_account_map_and_per_chain_liquidity() -> None:
    polygon = load_deploy_config(DEVNET_CONFIG, "polygon-local")
    assert polygon.safe.owners == tuple(devnet_account(i).address for i in (12, 13, 14))
    assert (polygon.safe.threshold, polygon.timelock_delay_seconds, polygon.pool_liquidity) == (2, 2, 250_000)
    assert polygon.roles.guardian == devnet_account(5).address
    assert polygon.roles.extra_proposers == (devnet_account(0).address,)
    assert load_deploy_config(DEVNET_CONFIG, "ethereum-local").pool_liquidity == 2_000_000
    assert load_deploy_config(DEVNET_CONFIG, "other", require_chain=False).pool_liquidity == 1_000_000


def test_the_production_example_has_a_safe_tokens_and_feeds() -> None:
    config = load_deploy_config(CONFIG_DIR / "production.example.toml", "ethereum")
    assert config.profile == "production"
    assert config.timelock_delay_seconds == 48 * 3_600
    assert config.safe.address is not None
    assert set(config.tokens) == set(config.price_feeds) == {"USDC", "WETH"}


def test_production_takes_a_timelock_delay_of_48_hours_or_more() -> None:
    """``creditmesh admin deploy`` with CREDITMESH_ENVIRONMENT=production refuses a shorter delay (the production
    profile's file alone allows any, for the governance tests on devnets)."""
    example = load_deploy_config(CONFIG_DIR / "production.example.toml", "ethereum")
    assert production_delay_refusal("ethereum", example) is None
    short = example.model_copy(update={"timelock_delay_seconds": 48 * 3_600 - 1})
    refusal = production_delay_refusal("ethereum", short)
    assert refusal is not None
    assert "172799 s is refused in production" in refusal


def test_a_missing_chain_or_a_safe_without_address_or_owners_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DeployConfigError, match=r"no \[chains.mainnet\]"):
        load_deploy_config(DEVNET_CONFIG, "mainnet")
    bad = tmp_path / "bad.toml"
    bad.write_text(DEVNET_CONFIG.read_text().replace("threshold = 2", "threshold = 4"))
    with pytest.raises(DeployConfigError, match="owners and a threshold"):
        load_deploy_config(bad, "polygon-local")


@pytest.mark.parametrize(
    ("tail", "says"),
    [("chains = 5\n", "chains must be a table"), ('[chains]\n"polygon-local" = 5\n', "chains.polygon-local must be")],
)
def test_chains_that_are_not_tables_are_refused(tail: str, says: str, tmp_path: Path) -> None:
    """``chains = 5`` or ``[chains] polygon-local = 5`` were TypeError and AttributeError tracebacks."""
    head = DEVNET_CONFIG.read_text().split("[safe]", 1)[0]  # the top-level keys, before any table
    bad = tmp_path / "bad.toml"
    bad.write_text(head + tail)
    with pytest.raises(DeployConfigError, match=says):
        load_deploy_config(bad, "polygon-local")
