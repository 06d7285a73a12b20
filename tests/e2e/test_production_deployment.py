"""The platform on a production-profile deployment over real HTTP: a fresh anvil whose tokens and feeds exist before
(the chain's own), the contract set deployed from a production configuration file, and the platform started on that
record alone — it lists the configured tokens with their decimals read at deploy time, quotes in them and opens a
loan of exactly the amount asked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from web3 import Web3
from web3.logs import DISCARD

from api.wallet import approve_collateral, sign_acceptance
from chain.artifacts import load_artifact
from chain.signers import Role, devnet_account, devnet_signer
from contracts.deploy import deploy_from_config, pool_key
from contracts.deploy_config import load_deploy_config
from tests.integration.chain.support import fresh_anvil
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform, running_platform
from tests.support.production import ExistingTokens, existing_tokens, production_config

pytestmark = pytest.mark.e2e

BORROWER = devnet_account(7)
LIQUIDITY = 1_000_000 * 10**6  # USDC base units the pool's first lender deposits


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DeployedChain, ExistingTokens]]:
    directory = tmp_path_factory.mktemp("production")
    with fresh_anvil(chain_id=31338, name="polygon-local") as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        tokens = existing_tokens(w3, anvil.chain_id)
        stated = f'{{ address = "{tokens.usdc}", decimals = 6 }}'
        config = load_deploy_config(
            production_config(directory / "production.toml", anvil.name, tokens, usdc=stated), anvil.name
        )
        record = deploy_from_config(
            anvil.name, anvil.chain_id, anvil.rpc_url, config, devnet_signer(Role.DEPLOYER), directory / "r.json"
        )
        _lend_and_fund(w3, record.address(pool_key("USDC")), tokens)
        yield DeployedChain(anvil, record, w3), tokens


def _lend_and_fund(w3: Web3, pool: str, tokens: ExistingTokens) -> None:
    """A lender deposits USDC in the pool (production seeds nothing); the borrower holds WETH to pledge."""
    lender = devnet_account(8).address  # anvil's accounts are unlocked: the node signs
    usdc = w3.eth.contract(address=tokens.usdc, abi=load_artifact("MockERC20").abi)
    weth = w3.eth.contract(address=tokens.weth, abi=load_artifact("MockERC20").abi)
    lending_pool = w3.eth.contract(address=Web3.to_checksum_address(pool), abi=load_artifact("LendingPool").abi)
    for call in (
        usdc.functions.mint(lender, LIQUIDITY),
        usdc.functions.approve(pool, LIQUIDITY),
        lending_pool.functions.deposit(LIQUIDITY, lender),
        weth.functions.mint(BORROWER.address, 10 * 10**18),
    ):
        w3.eth.wait_for_transaction_receipt(call.transact({"from": lender}))


@pytest.fixture(scope="module")
def platform(
    deployed: tuple[DeployedChain, ExistingTokens], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    chain, _ = deployed
    with running_platform({chain.name: chain}, tmp_path_factory.mktemp("production-platform")) as running:
        yield running


def test_the_platform_lists_the_production_tokens_quotes_and_opens_the_loan_asked(
    platform: RunningPlatform, deployed: tuple[DeployedChain, ExistingTokens]
) -> None:
    chain, tokens = deployed
    key = platform.onboard(BORROWER.address)
    with platform.client(key) as client:
        document = client.get("/v1/platform").json()
        request = client.post(
            "/v1/credit-requests",
            json={"amount": "1500", "asset": "USDC", "term_days": 30, "collateral": {"asset": "WETH", "amount": "1"}},
        )
    assets = {asset["symbol"]: asset for asset in document["assets"]}
    for symbol, decimals, address in (("USDC", 6, tokens.usdc), ("WETH", 18, tokens.weth)):
        # the chain's own token, with the permit domain it answers (EIP-5267) for a wallet to sign permits under
        erc20 = chain.w3.eth.contract(address=address, abi=load_artifact("MockERC20").abi)
        _, name, version, chain_id, verifying, _, _ = erc20.functions.eip712Domain().call()
        domain = {"name": name, "version": version, "chainId": chain_id, "verifyingContract": verifying}
        assert assets[symbol] == {
            "symbol": symbol,
            "decimals": decimals,
            "addresses": {chain.name: address},
            "permit_domains": {chain.name: domain},
        }
    assert request.status_code == 201, request.text
    quote = next(q for q in request.json()["quotes"] if q["kind"] == "pool")
    assert quote["offer"]["asset"] == tokens.usdc
    assert int(quote["offer"]["principal"]) == 1_500 * 10**6
    assert int(quote["offer"]["collateralAmount"]) == 10**18

    loan = _accept(platform, key, chain, quote)

    receipt = chain.w3.eth.get_transaction_receipt(loan["transaction_hash"])
    (event,) = chain.contract("CreditAggregator").events.LoanOpened().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["principal"] == 1_500 * 10**6
    assert event["args"]["pool"] == chain.record.address(pool_key("USDC"))
    usdc = chain.w3.eth.contract(address=tokens.usdc, abi=load_artifact("MockERC20").abi)
    assert usdc.functions.balanceOf(BORROWER.address).call() == 1_500 * 10**6 - int(quote["offer"]["originationFee"])


def _accept(platform: RunningPlatform, key: str, chain: DeployedChain, quote: dict[str, Any]) -> dict[str, Any]:
    offer = quote["offer"]
    approve_collateral(
        BORROWER, chain.devnet.rpc_url, offer["collateralAsset"], quote["contract"], int(offer["collateralAmount"])
    )
    with platform.client(key) as client:
        response = client.post(
            f"/v1/quotes/{quote['id']}/accept",
            json={"signature": sign_acceptance(BORROWER, quote["acceptance_typed_data"])},
        )
    assert response.status_code == 201, response.text
    loan: dict[str, Any] = response.json()
    assert loan["status"] == "active"
    return loan
