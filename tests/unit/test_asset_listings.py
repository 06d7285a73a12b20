"""The assets the platform serves come from every chain's deployments record in one shape (``tokens``: symbol,
decimals, address), whatever the profile: a production record that lists only its tokens' addresses is refused at
start-up with what to do, and so is a symbol whose decimals differ between chains (one request's amount in base
units is offered on every chain: 1,000 USDC must not become 10^21 base units on a 6-decimal chain)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from eth_utils.address import to_checksum_address

from aggregator.assets import AssetRegistry
from aggregator.errors import AssetListingConflict
from aggregator.projection import LedgerChain
from api.bootstrap import _assets
from api.settings import Settings
from chain.deployment import DeployedContract, DeploymentRecord, TokenListing
from chain.errors import ConfigurationError
from contracts.deploy_config import load_deploy_config
from contracts.governance.catalog import token_address

pytestmark = pytest.mark.unit

USDC_ETHEREUM = to_checksum_address("0x" + "11" * 20)
USDC_BSC = to_checksum_address("0x" + "22" * 20)
WETH = to_checksum_address("0x" + "33" * 20)
PRICES = {"USDC": Decimal(1), "WETH": Decimal(3000)}
SETTINGS = cast(Settings, SimpleNamespace(asset_prices_usd=PRICES))


def _listed(chain_name: str, chain_id: int, **tokens: TokenListing) -> DeploymentRecord:
    listed = {name: listing.model_dump(mode="json") for name, listing in tokens.items()}
    return DeploymentRecord(
        chain_name=chain_name, chain_id=chain_id, profile="production", parameters={"tokens": listed}
    )


def test_one_symbol_with_the_same_decimals_on_two_chains_is_one_asset_with_an_address_per_chain() -> None:
    registry = AssetRegistry.from_listings(
        {
            "ethereum": {"USDC": TokenListing(symbol="USDC", decimals=6, address=USDC_ETHEREUM)},
            "polygon": {
                "USDC": TokenListing(symbol="USDC", decimals=6, address=USDC_BSC),
                "WETH": TokenListing(symbol="WETH", decimals=18, address=WETH),
            },
        },
        PRICES,
    )
    usdc = registry.get("USDC")
    assert usdc.decimals == 6
    assert usdc.addresses == {"ethereum": USDC_ETHEREUM, "polygon": USDC_BSC}
    assert usdc.to_base_units(Decimal("1000"), "amount") == 1_000 * 10**6
    assert registry.get("WETH").addresses == {"polygon": WETH}
    assert registry.by_address("polygon", USDC_BSC.lower()) is usdc


def test_one_symbol_with_other_decimals_on_another_chain_is_refused_naming_both() -> None:
    listings = {
        "ethereum": {"USDC": TokenListing(symbol="USDC", decimals=6, address=USDC_ETHEREUM)},
        "bsc": {"USDC": TokenListing(symbol="USDC", decimals=18, address=USDC_BSC)},
    }
    with pytest.raises(
        AssetListingConflict, match=r"USDC has different decimals per chain \(18 on bsc, 6 on ethereum\)"
    ):
        AssetRegistry.from_listings(listings, PRICES)
    # the platform refuses to start on such records, naming the chains (not quoting 10^12 times the amount on one)
    records = {
        "ethereum": _listed("ethereum", 1, USDC=listings["ethereum"]["USDC"]),
        "bsc": _listed("bsc", 56, USDC=listings["bsc"]["USDC"]),
    }
    with pytest.raises(ConfigurationError, match="18 on bsc, 6 on ethereum"):
        _assets(SETTINGS, records)


def test_more_decimals_than_a_whole_unit_fits_the_contracts_amounts_are_refused() -> None:
    wide = {"ethereum": {"USDC": TokenListing(symbol="USDC", decimals=29, address=USDC_ETHEREUM)}}
    with pytest.raises(AssetListingConflict, match="USDC has 29 decimals"):
        AssetRegistry.from_listings(wide, PRICES)


def test_a_production_record_listing_its_tokens_serves_them_and_names_them_in_the_ledger() -> None:
    record = _listed(
        "ethereum",
        1,
        USDC=TokenListing(symbol="USDC", decimals=6, address=USDC_ETHEREUM),
        WETH=TokenListing(symbol="WETH", decimals=18, address=WETH),
    )
    registry = _assets(SETTINGS, {"ethereum": record})
    assert registry.symbols() == ["USDC", "WETH"]
    assert registry.get("USDC").addresses == {"ethereum": USDC_ETHEREUM}
    aggregator = to_checksum_address("0x" + "44" * 20)
    deployed = {"address": aggregator, "artifact": "CreditAggregator", "tx_hash": "0x00", "block": 1}
    record.contracts = {key: DeployedContract(**deployed) for key in ("CreditAggregator", "CollateralManager")}
    assert LedgerChain.from_record(record).symbol(USDC_ETHEREUM.lower()) == "USDC"
    assert token_address(record, "WETH") == WETH


def test_a_production_record_with_token_addresses_alone_is_refused_at_start_up_saying_what_to_do() -> None:
    record = DeploymentRecord(
        chain_name="ethereum",
        chain_id=1,
        profile="production",
        parameters={"tokenAddresses": {"USDC": USDC_ETHEREUM, "WETH": WETH}},
    )
    with pytest.raises(ConfigurationError, match=r"ethereum .*re-run `creditmesh admin deploy --config"):
        _assets(SETTINGS, {"ethereum": record})
    assert token_address(record, "USDC") == USDC_ETHEREUM  # governance still finds the token


def test_a_devnet_record_written_before_listings_carried_addresses_reads_them_from_its_contracts() -> None:
    deployed = {"address": USDC_ETHEREUM, "artifact": "MockERC20", "tx_hash": "0x00", "block": 1}
    record = DeploymentRecord(
        chain_name="ethereum-local",
        chain_id=31337,
        profile="devnet",
        contracts={"USDC": DeployedContract(**deployed)},
        parameters={"tokens": {"USDC": {"symbol": "USDC", "decimals": 6}}},
    )
    assert record.token_listings() == {"USDC": TokenListing(symbol="USDC", decimals=6, address=USDC_ETHEREUM)}
    unreadable: dict[str, Any] = {"USDC": {"symbol": "USDC"}}
    record.parameters["tokens"] = unreadable
    with pytest.raises(ConfigurationError, match="lists USDC unreadably"):
        record.token_listings()


def test_a_production_configuration_names_a_token_by_address_or_with_the_decimals_it_expects(tmp_path: Path) -> None:
    path = tmp_path / "production.toml"
    path.write_text(
        f"""
profile = "production"
timelock_delay_seconds = 172_800
[safe]
address = "{WETH}"
[roles]
relayer = "{WETH}"
quote_signer = "{WETH}"
risk_signer = "{WETH}"
operator = "{WETH}"
guardian = "{WETH}"
audit_anchor = "{WETH}"
[chains.bsc]
tokens = {{ USDC = {{ address = "{USDC_BSC.lower()}", decimals = 18 }}, WETH = "{WETH.lower()}" }}
"""
    )
    config = load_deploy_config(path, "bsc")
    assert config.tokens["USDC"].address == USDC_BSC
    assert config.tokens["USDC"].decimals == 18
    assert config.tokens["WETH"].address == WETH
    assert config.tokens["WETH"].decimals is None


def test_a_listed_token_without_a_price_is_not_served_and_start_up_says_so(caplog: pytest.LogCaptureFixture) -> None:
    dai = TokenListing(symbol="DAI", decimals=18, address=to_checksum_address("0x" + "44" * 20))
    usdc = TokenListing(symbol="USDC", decimals=6, address=USDC_ETHEREUM)
    with caplog.at_level("WARNING", logger="api.bootstrap"):
        registry = _assets(SETTINGS, {"ethereum": _listed("ethereum", 1, USDC=usdc, DAI=dai)})
    assert registry.symbols() == ["USDC"]
    assert [r.getMessage() for r in caplog.records if "not served" in r.getMessage()] == [
        "listed in the deployments records but not served, no CREDITMESH_ASSET_PRICES_USD price: DAI"
    ]
