"""The production profile from its configuration file, on a fresh anvil: no mocks deployed by the recipe, the
configured tokens, feeds, delay and role holders, a Safe from configured owners, and the deployer holding nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from web3 import Web3

from chain.artifacts import load_artifact
from chain.deployment import Deployer, DeploymentRecord
from chain.safe import read_safe, safe_contract
from chain.signers import Role, devnet_account, devnet_signer
from chain.verification import CodeStatus, verify_record
from contracts.deploy import ANCHOR_ROLE, DEFAULT_ADMIN_ROLE, GUARDIAN_ROLE, deploy_from_config
from contracts.deploy_config import load_deploy_config
from tests.integration.chain.support import fresh_anvil

pytestmark = pytest.mark.integration


def test_the_production_profile_deploys_what_its_file_says(tmp_path: Path) -> None:
    deployer = devnet_signer(Role.DEPLOYER)
    with fresh_anvil(chain_id=31338, name="polygon-local") as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        # the chain's existing tokens and feeds (here: deployed first, as a real chain would already have them)
        existing = Deployer(w3, deployer, DeploymentRecord(chain_name="pre", chain_id=31338, profile="pre"))
        usdc = existing.deploy("USDC", "MockERC20", "USD Coin", "USDC", 6)
        weth = existing.deploy("WETH", "MockERC20", "Wrapped Ether", "WETH", 18)
        usdc_feed = existing.deploy("USDC-feed", "MockPriceFeed", 8, 10**8)
        weth_feed = existing.deploy("WETH-feed", "MockPriceFeed", 8, 3_000 * 10**8)
        existing.close()
        guardian = devnet_account(17).address
        config_file = tmp_path / "production.toml"
        config_file.write_text(
            f"""
profile = "production"
timelock_delay_seconds = 600
[safe]
owners = ["devnet:12", "devnet:13", "devnet:14"]
threshold = 2
[roles]
relayer = "devnet:1"
quote_signer = "devnet:2"
risk_signer = "devnet:3"
operator = "devnet:4"
guardian = "{guardian}"
audit_anchor = "devnet:11"
[chains.polygon-local]
tokens = {{ USDC = "{usdc}", WETH = "{weth}" }}
price_feeds.USDC = {{ address = "{usdc_feed}", heartbeat = 86400 }}
price_feeds.WETH = {{ address = "{weth_feed}", heartbeat = 3600 }}
"""
        )
        config = load_deploy_config(config_file, "polygon-local")

        record = deploy_from_config(anvil.name, anvil.chain_id, anvil.rpc_url, config, deployer, tmp_path / "r.json")

        assert record.profile == "production"
        assert not {"USDC", "WETH", "PriceFeed:USDC", "PriceFeed:WETH"} & set(record.contracts)
        timelock = w3.eth.contract(address=record.address("Timelock"), abi=load_artifact("TimelockController").abi)
        assert timelock.functions.getMinDelay().call() == 600
        proposer = timelock.functions.PROPOSER_ROLE().call()
        assert timelock.functions.hasRole(proposer, record.address("Safe")).call()
        assert not timelock.functions.hasRole(proposer, deployer.address).call()
        assert read_safe(safe_contract(w3, record.address("Safe"))).threshold == 2
        pool = w3.eth.contract(address=record.address("LendingPool:USDC"), abi=load_artifact("LendingPool").abi)
        assert pool.functions.asset().call() == usdc
        assert pool.functions.hasRole(GUARDIAN_ROLE, guardian).call()
        assert pool.functions.totalAssets().call() == 0  # no seeding outside devnets
        anchor = w3.eth.contract(address=record.address("AuditAnchor"), abi=load_artifact("AuditAnchor").abi)
        assert anchor.functions.hasRole(ANCHOR_ROLE, devnet_account(11).address).call()
        assert not anchor.functions.hasRole(DEFAULT_ADMIN_ROLE, deployer.address).call()
        assert anchor.functions.hasRole(DEFAULT_ADMIN_ROLE, record.address("Timelock")).call()
        for key in ("CreditAggregator", "CollateralManager", "CreditScoringOracle", "LendingPool:USDC"):
            contract = w3.eth.contract(
                address=record.address(key), abi=load_artifact(record.contracts[key].artifact).abi
            )
            assert contract.functions.hasRole(DEFAULT_ADMIN_ROLE, timelock.address).call()
            assert not contract.functions.hasRole(DEFAULT_ADMIN_ROLE, deployer.address).call()
        assert {check.status for check in verify_record(w3, record)} == {CodeStatus.VERIFIED}
