"""The production profile from its configuration file, on a fresh anvil: no mocks deployed by the recipe, the
configured tokens (listed with their symbols and decimals read from chain, refused when the decimals differ from the
configuration's), feeds, delay and role holders, a Safe from configured owners, and the deployer holding nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from web3 import Web3

from chain.artifacts import load_artifact
from chain.deployment import DeploymentRecord
from chain.errors import ConfigurationError
from chain.safe import read_safe, safe_contract
from chain.signers import Role, devnet_account, devnet_signer
from chain.verification import CodeStatus, verify_record
from contracts.deploy import ANCHOR_ROLE, DEFAULT_ADMIN_ROLE, GUARDIAN_ROLE, deploy_from_config
from contracts.deploy_config import DeployConfigError, load_deploy_config
from tests.integration.chain.support import fresh_anvil
from tests.support.production import existing_tokens, production_config

pytestmark = pytest.mark.integration


def test_the_production_profile_deploys_what_its_file_says(tmp_path: Path) -> None:
    deployer = devnet_signer(Role.DEPLOYER)
    with fresh_anvil(chain_id=31338, name="polygon-local") as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        existing = existing_tokens(w3, anvil.chain_id)
        usdc, weth = existing.usdc, existing.weth
        guardian = devnet_account(17).address
        config_file = production_config(tmp_path / "production.toml", "polygon-local", existing, guardian=guardian)
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
        # the tokens listed as the devnet lists its mocks: what the platform serves (api.bootstrap), read from chain
        assert record.parameters["tokens"] == {
            "USDC": {"symbol": "USDC", "decimals": 6, "address": usdc},
            "WETH": {"symbol": "WETH", "decimals": 18, "address": weth},
        }
        assert DeploymentRecord.load(tmp_path / "r.json").token_listings() == record.token_listings()


def test_a_token_whose_decimals_differ_from_its_configuration_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    deployer = devnet_signer(Role.DEPLOYER)
    with fresh_anvil(chain_id=31338, name="bsc") as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        existing = existing_tokens(w3, anvil.chain_id, usdc_decimals=18)  # as BSC's USDC
        stated = f'{{ address = "{existing.usdc}", decimals = 6 }}'
        config = load_deploy_config(production_config(tmp_path / "p.toml", "bsc", existing, usdc=stated), "bsc")
        sent = w3.eth.get_transaction_count(deployer.address)

        with pytest.raises(DeployConfigError, match=f"USDC at {existing.usdc} has 18 decimals .* not the 6"):
            deploy_from_config(anvil.name, anvil.chain_id, anvil.rpc_url, config, deployer, tmp_path / "r.json")

        assert w3.eth.get_transaction_count(deployer.address) == sent  # not even the Safe
        assert not (tmp_path / "r.json").exists()


def test_a_record_deployed_before_tokens_were_listed_gets_them_from_a_rerun_that_sends_nothing(
    tmp_path: Path,
) -> None:
    deployer = devnet_signer(Role.DEPLOYER)
    with fresh_anvil(chain_id=31338, name="polygon-local") as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        existing = existing_tokens(w3, anvil.chain_id)
        config = load_deploy_config(production_config(tmp_path / "p.toml", "polygon-local", existing), "polygon-local")
        path = tmp_path / "r.json"
        deploy_from_config(anvil.name, anvil.chain_id, anvil.rpc_url, config, deployer, path)
        old = DeploymentRecord.load(path)  # as the production profile wrote it before: token addresses alone
        old.parameters["tokenAddresses"] = {"USDC": existing.usdc, "WETH": existing.weth}
        del old.parameters["tokens"]
        old.save(path)
        with pytest.raises(ConfigurationError, match="re-run `creditmesh admin deploy"):
            DeploymentRecord.load(path).token_listings()
        sent = w3.eth.get_transaction_count(deployer.address)

        deploy_from_config(anvil.name, anvil.chain_id, anvil.rpc_url, config, deployer, path)

        assert w3.eth.get_transaction_count(deployer.address) == sent
        listed = DeploymentRecord.load(path).token_listings()
        assert {name: (t.decimals, t.address) for name, t in listed.items()} == {
            "USDC": (6, existing.usdc),
            "WETH": (18, existing.weth),
        }
