"""A loan's live figures (``aggregator.loans.read_live``, shown by ``GET /v1/loans/{id}``) read from anvil with the
contract set deployed. The CollateralManager's ``healthFactor`` reverts while its feeds do not price the position (a
stale price, the sequencer down): what is owed and past due is still shown then, the health factor null with why.
Before, the three views were read in one ``try`` and a stale feed dropped the whole live section, the borrower told
the chain "did not answer". ``liquidatable`` says whether ``liquidate`` would take the position: a defaulted loan
shows a health factor above 1 though anyone may liquidate it in full."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import pytest
from eth_account import Account
from web3 import AsyncWeb3

from aggregator.assets import Asset, AssetRegistry
from aggregator.loans import InMemoryLoanStore, LoanRecord, LoanScope, LoanService
from aggregator.platform import ChainRuntime
from api.render import loan_detail_out
from chain.artifacts import load_artifact
from chain.deployment import DeploymentRecord
from tests.contracts.harness import DEPLOYER, GUARDIAN, OPERATOR, USDC, WETH, Harness
from tests.support.devnet import DeployedChain

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

CHAIN = "ethereum-local"


@dataclass
class _Runtime:
    """The parts of a ``ChainRuntime`` the live read uses: the chain's name, its async web3 and its contracts."""

    name: str
    w3: AsyncWeb3[Any]
    record: DeploymentRecord

    def aggregator(self) -> Any:
        abi = load_artifact("CreditAggregator").abi
        return self.w3.eth.contract(address=self.record.address("CreditAggregator"), abi=abi)


@pytest.fixture
async def runtime(ethereum_local: DeployedChain) -> AsyncIterator[_Runtime]:
    w3 = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(ethereum_local.devnet.rpc_url))
    yield _Runtime(CHAIN, w3, ethereum_local.record)
    await w3.provider.disconnect()


def _service(chain: DeployedChain, runtime: _Runtime, loan_ref: int) -> LoanService:
    store = InMemoryLoanStore()
    opened = datetime.now(UTC)
    store.loans = {
        "l1": LoanRecord(
            "l1", CHAIN, chain.chain_id, chain.record.address("CreditAggregator"), "active", "USDC", 1_500 * USDC,
            "0x" + "ab" * 32, opened, borrower_id="alice", onchain_loan_id=loan_ref,
        )
    }  # fmt: skip
    return LoanService(store, {CHAIN: cast(ChainRuntime, runtime)})


def _assets(chain: DeployedChain) -> AssetRegistry:
    return AssetRegistry(
        [
            Asset("USDC", 6, Decimal(1), {CHAIN: chain.record.address("USDC")}),
            Asset("WETH", 18, Decimal(3000), {CHAIN: chain.record.address("WETH")}),
        ]
    )


def _open(harness: Harness, **changes: Any) -> int:
    borrower = Account.create()
    harness.impersonate(borrower.address)
    harness.fund(borrower.address, weth=WETH)
    harness.approve_all(borrower.address)
    return harness.open_loan(borrower, **changes)[0]


def _fresh_feeds(harness: Harness, weth_usd: int = 3_000) -> None:
    harness.set_weth_price(weth_usd)
    harness.send(harness.usdc_feed.functions.setAnswer(10**8), DEPLOYER)


async def test_a_stale_price_leaves_the_health_factor_out_and_shows_what_is_owed(
    ethereum_local: DeployedChain, runtime: _Runtime
) -> None:
    harness = Harness(ethereum_local)
    loan_ref = _open(harness)
    service = _service(ethereum_local, runtime, loan_ref)
    fresh = await service.detail("l1", LoanScope(borrower_id="alice"))
    assert fresh.live is not None
    assert fresh.live.health_factor is not None

    now = harness.now()
    harness.send(harness.weth_feed.functions.setTimes(now - 7_200, now - 7_200), DEPLOYER)  # heartbeat 3,600 s

    detail = await service.detail("l1", LoanScope(borrower_id="alice"))

    assert detail.live_error is None
    live = detail.live
    assert live is not None, "the owed figures are read though the health factor reverts"
    owed = harness.aggregator.functions.amountOwed(loan_ref).call(block_identifier=live.block)
    assert (live.principal_owed, live.interest_owed) == tuple(owed)
    assert live.principal_owed == 1_500 * USDC
    assert live.maturity == harness.loan(loan_ref)["maturity"]
    assert live.health_factor is None
    feed = harness.weth_feed.address
    assert live.health_error is not None
    assert live.health_error.startswith(f"a price feed ({feed}) is stale, last updated ")
    assert live.health_error.endswith("so it cannot be liquidated until the feeds price it again")

    assets = _assets(ethereum_local)
    shown = loan_detail_out(detail, assets)
    assert shown.live is not None
    assert shown.live.total_owed == assets.get("USDC").format(sum(owed))
    assert shown.live.health_factor is None
    assert shown.live.health_factor_error == live.health_error
    assert shown.live.days_past_due == 0


async def test_a_defaulted_loan_is_liquidatable_whatever_its_health_factor_until_liquidations_are_paused(
    ethereum_local: DeployedChain, runtime: _Runtime
) -> None:
    harness = Harness(ethereum_local)
    loan_ref = _open(harness, term=86_400)
    service = _service(ethereum_local, runtime, loan_ref)
    active = await service.detail("l1", LoanScope(borrower_id="alice"))
    assert active.live is not None
    assert active.live.liquidatable is False, "healthy and not yet due"

    harness.advance(86_400 + harness.aggregator.functions.gracePeriod().call() + 10)
    _fresh_feeds(harness)
    harness.send(harness.aggregator.functions.markDefault(loan_ref), OPERATOR)

    detail = await service.detail("l1", LoanScope(borrower_id="alice"))

    live = detail.live
    assert live is not None
    assert live.health_factor is not None
    assert live.health_factor > 1
    assert live.liquidatable is True
    shown = loan_detail_out(detail, _assets(ethereum_local)).live
    assert shown is not None
    assert shown.liquidatable is True
    harness.fund(DEPLOYER.address, usdc=10 * USDC)
    harness.send(harness.usdc.functions.approve(harness.manager.address, 10 * USDC), DEPLOYER)
    harness.manager.functions.liquidate(loan_ref, 10 * USDC).call({"from": DEPLOYER.address})  # it would go through

    harness.send(harness.manager.functions.pauseLiquidations(), GUARDIAN)
    paused = await service.detail("l1", LoanScope(borrower_id="alice"))
    assert paused.live is not None
    assert paused.live.liquidatable is False


async def test_a_position_below_one_is_liquidatable_unless_its_liquidation_is_held(
    ethereum_local: DeployedChain, runtime: _Runtime
) -> None:
    harness = Harness(ethereum_local)
    loan_ref = _open(harness, pool=False)  # funded off-chain: the operator may hold its liquidation
    service = _service(ethereum_local, runtime, loan_ref)
    _fresh_feeds(harness, weth_usd=1_700)  # 1,500 USDC on 1 WETH at 1,700: past the 82.5% threshold

    below = await service.detail("l1", LoanScope(borrower_id="alice"))
    assert below.live is not None
    assert below.live.health_factor is not None
    assert below.live.health_factor < 1
    assert below.live.liquidatable is True

    harness.send(harness.manager.functions.holdLiquidation(loan_ref), OPERATOR)
    held = await service.detail("l1", LoanScope(borrower_id="alice"))
    assert held.live is not None
    assert held.live.liquidatable is False


async def test_the_liquidation_price_is_where_the_health_factor_reaches_one(
    ethereum_local: DeployedChain, runtime: _Runtime
) -> None:
    """1,500 USDC on 1 WETH, WETH's liquidation threshold 82.5%: liquidated below 1,500 ÷ 0.825 = 1,818.18 USD a
    WETH (to the cent, up: 1,818.19). At that price the position still holds; a cent under it, it is liquidatable."""
    harness = Harness(ethereum_local)
    loan_ref = _open(harness)
    service = _service(ethereum_local, runtime, loan_ref)
    assets = _assets(ethereum_local)

    shown = loan_detail_out(await service.detail("l1", LoanScope(borrower_id="alice")), assets).live
    assert shown is not None
    assert shown.liquidation_threshold_bps == 8_250
    assert shown.liquidation_price_usd == "1818.19"

    harness.send(harness.weth_feed.functions.setAnswer(181_819 * 10**6), DEPLOYER)
    at = await service.detail("l1", LoanScope(borrower_id="alice"))
    assert at.live is not None
    assert at.live.health_factor is not None
    assert at.live.health_factor >= 1
    assert at.live.liquidatable is False
    harness.send(harness.weth_feed.functions.setAnswer(181_818 * 10**6), DEPLOYER)
    under = await service.detail("l1", LoanScope(borrower_id="alice"))
    assert under.live is not None
    assert under.live.liquidatable is True

    now = harness.now()
    harness.send(harness.weth_feed.functions.setTimes(now - 7_200, now - 7_200), DEPLOYER)
    stale = loan_detail_out(await service.detail("l1", LoanScope(borrower_id="alice")), assets).live
    assert stale is not None
    assert stale.liquidation_price_usd is None
    assert stale.liquidation_threshold_bps == 8_250
