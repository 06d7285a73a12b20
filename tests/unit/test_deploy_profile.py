"""An L2 in production needs its sequencer-uptime feed: the configuration file is refused without one, and so is the
recipe (before it sends anything); the devnet configuration marks arbitrum-local as an L2."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from eth_utils.address import to_checksum_address

from chain.deployment import Deployer, DeploymentRecord
from contracts.deploy import Profile, RoleAddresses, deploy_contract_set
from contracts.deploy_config import DEVNET_CONFIG, DeployConfigError, load_deploy_config

pytestmark = pytest.mark.unit

ADDRESS = to_checksum_address("0x" + "11" * 20)
PRODUCTION_L2 = f"""
profile = "production"
timelock_delay_seconds = 172_800
[safe]
address = "{ADDRESS}"
[roles]
relayer = "{ADDRESS}"
quote_signer = "{ADDRESS}"
risk_signer = "{ADDRESS}"
operator = "{ADDRESS}"
guardian = "{ADDRESS}"
audit_anchor = "{ADDRESS}"
[chains.arbitrum]
layer2 = true
"""


def test_a_production_l2_configuration_needs_its_sequencer_feed(tmp_path: Path) -> None:
    path = tmp_path / "production.toml"
    path.write_text(PRODUCTION_L2)
    with pytest.raises(DeployConfigError, match="sequencer_feed"):
        load_deploy_config(path, "arbitrum")
    path.write_text(PRODUCTION_L2 + f'sequencer_feed = "{ADDRESS}"\n')
    assert load_deploy_config(path, "arbitrum").sequencer_feed == ADDRESS
    assert load_deploy_config(DEVNET_CONFIG, "arbitrum-local").layer2
    assert not load_deploy_config(DEVNET_CONFIG, "ethereum-local").layer2


def test_the_production_recipe_refuses_an_l2_without_a_sequencer_feed() -> None:
    record = DeploymentRecord(chain_name="arbitrum", chain_id=42_161, profile="production")
    deployer = cast(Deployer, SimpleNamespace(record=record))  # nothing is sent: the recipe refuses first
    roles = RoleAddresses(ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS)
    with pytest.raises(ValueError, match="sequencer-uptime feed"):
        deploy_contract_set(
            deployer,
            Profile.PRODUCTION,
            roles,
            token_addresses={"USDC": ADDRESS, "WETH": ADDRESS},
            feed_addresses={"USDC": (ADDRESS, 86_400), "WETH": (ADDRESS, 3_600)},
            layer2=True,
        )
    assert record.steps == []
