"""A credit request is quoted only on the chains whose contracts would open its loan: the collateral asset's own LTV
in the CollateralManager (when governance set it below the grade's), its frozen flag and supply cap, and the
CreditAggregator's pause are read at quote time (one batch per chain, kept a few seconds), and a chain that would
refuse the loan at the accept (``LtvAboveCollateralLimit``, ``CollateralFrozen``, ``SupplyCapExceeded``,
``EnforcedPause``) is left out, its providers ineligible with the reason named; the other chains are quoted. An offer
is quoted only when the collateral carries the debt its schedule reaches (principal and interest) within the LTV: the
health factor counts the interest. On two anvil devnets with the contract set deployed, their feeds pricing the
collateral."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account
from web3.exceptions import ContractCustomError

from aggregator.assets import Asset, AssetRegistry
from aggregator.collateral_limits import CollateralLimits
from aggregator.platform import ChainRuntime
from aggregator.quote_store import InMemoryQuotingStore
from aggregator.quoting import QuotingConfig, QuotingService
from aggregator.valuation import FeedPricer
from chain.client import ChainClient
from chain.signers import Role, devnet_signer
from chain.transactions import TransactionManager
from providers.models import ProviderKind
from risk.velocity import InMemoryVelocityStore
from store.chain import SqlChainStore
from store.db import Database
from tests.contracts.harness import DEPLOYER, USDC, WETH, Harness
from tests.support.devnet import DeployedChain
from tests.support.quoting import (
    QUOTE_SIGNER,
    RISK_SIGNER,
    SPEC,
    FixedRateLender,
    borrower_file,
    shipped_compliance,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ETHEREUM, POLYGON = "ethereum-local", "polygon-local"


@pytest.fixture
def chains(devnet_chains: dict[str, DeployedChain]) -> Iterator[dict[str, DeployedChain]]:
    """ethereum-local and polygon-local, reverted afterwards."""
    with devnet_chains[ETHEREUM].snapshot(), devnet_chains[POLYGON].snapshot():
        yield {name: devnet_chains[name] for name in (ETHEREUM, POLYGON)}


@pytest.fixture
async def service(chains: dict[str, DeployedChain], tmp_path: Path) -> AsyncIterator[QuotingService]:
    """The quoting service on the two chains' contracts: the feeds price the collateral (``FeedPricer``), the
    collateral's terms are read as the platform builds it (no limits reader passed: the pricer's chains'); a bank
    that lends on any chain and a pool on each chain (and one on a third chain) answer at fixed rates."""
    database = Database(f"sqlite:///{tmp_path / 'chain.db'}")
    database.migrate()
    runtimes = {}
    for name, chain in chains.items():
        client = await ChainClient(chain.config).connect()
        relayer = TransactionManager(client, devnet_signer(Role.RELAYER), SqlChainStore(database.sessions))
        runtimes[name] = ChainRuntime(client, chain.record, relayer)
    usdc = {name: chain.record.address("USDC") for name, chain in chains.items()}
    weth = {name: chain.record.address("WETH") for name, chain in chains.items()}
    assets = AssetRegistry([Asset("USDC", 6, Decimal(1), usdc), Asset("WETH", 18, Decimal(3000), weth)])
    yield QuotingService(
        InMemoryQuotingStore(),
        runtimes,
        assets,
        [
            FixedRateLender("bank", ProviderKind.TRADITIONAL, [900]),
            *(FixedRateLender(f"pool:{name}", ProviderKind.POOL, [800], chain=name) for name in chains),
            FixedRateLender("pool:arbitrum-local", ProviderKind.POOL, [800], chain="arbitrum-local"),
        ],
        quote_signer=QUOTE_SIGNER,
        risk_signer=RISK_SIGNER,
        compliance=shipped_compliance(),
        velocity=InMemoryVelocityStore(),
        config=QuotingConfig(fanout_deadline=5.0),
        pricer=FeedPricer(runtimes),
    )
    for runtime in runtimes.values():
        await runtime.client.close()
    database.dispose()


def _as(chain: DeployedChain, account: str) -> str:
    chain.w3.provider.make_request("anvil_impersonateAccount", [account])  # type: ignore[arg-type]
    chain.w3.provider.make_request("anvil_setBalance", [account, hex(10**20)])  # type: ignore[arg-type]
    return account


def _set_weth(chain: DeployedChain, ltv_bps: int | None = None, supply_cap: int | None = None) -> None:
    """Governance (the Timelock) sets WETH's LTV or supply cap, its other parameters as they are."""
    manager, weth = chain.contract("CollateralManager"), chain.record.address("WETH")
    ltv, threshold, bonus, cap, _total, _frozen = manager.functions.collateralConfig(weth).call()
    timelock = _as(chain, chain.record.address("Timelock"))
    call = manager.functions.setCollateralParameters(
        weth, ltv if ltv_bps is None else ltv_bps, threshold, bonus, cap if supply_cap is None else supply_cap
    )
    chain.w3.eth.wait_for_transaction_receipt(call.transact({"from": timelock}))


def _outcomes(quoted: object) -> dict[str, tuple[str, str]]:
    return {o.provider_id: (o.outcome, o.detail) for o in quoted.outcomes}  # type: ignore[attr-defined]


async def test_a_collateral_ltv_below_the_grades_leaves_the_chain_out(
    chains: dict[str, DeployedChain], service: QuotingService
) -> None:
    ethereum = chains[ETHEREUM]
    _set_weth(ethereum, ltv_bps=4_500)  # 1,500 USDC on 1 WETH at 3,000 is 50%: within the grade's, not WETH's 45%
    aggregator = _as(ethereum, ethereum.record.address("CreditAggregator"))
    manager = ethereum.contract("CollateralManager")
    weth, usdc = ethereum.record.address("WETH"), ethereum.record.address("USDC")
    with pytest.raises(ContractCustomError):  # what the accept of such a quote met: LtvAboveCollateralLimit
        manager.functions.openPosition(999, aggregator, weth, 10**18, usdc, 1_500 * 10**6, 8_000).call(
            {"from": aggregator}
        )

    quoted = await service.request_credit(borrower_file(), replace(SPEC, preferred_chains=(ETHEREUM,)))

    assert quoted.request.status == "no_offers"
    assert quoted.quotes == []
    outcomes = _outcomes(quoted)
    reason = outcomes["bank"][1]
    assert outcomes["bank"][0] == "ineligible"
    assert reason.startswith("the amount is above 45.00% of the collateral's value, WETH's loan-to-value limit on")
    assert outcomes[f"pool:{ETHEREUM}"] == ("ineligible", reason)

    within = await service.request_credit(
        borrower_file(), replace(SPEC, amount="1300.00", preferred_chains=(ETHEREUM,))
    )
    assert within.request.status == "quoted", "43% of the collateral's value: within WETH's 45%"
    assert {q.provider_id for q in within.quotes} == {"bank", f"pool:{ETHEREUM}"}

    # both chains asked: ethereum-local is left out, polygon-local (WETH at its deployed 80%) quotes, the bank's offer
    # placed there
    both = await service.request_credit(borrower_file(), SPEC)
    assert both.request.status == "quoted"
    assert {(q.provider_id, q.chain_name) for q in both.quotes} == {("bank", POLYGON), (f"pool:{POLYGON}", POLYGON)}
    assert _outcomes(both)[f"pool:{ETHEREUM}"][0] == "ineligible"


async def test_frozen_or_capped_collateral_and_a_paused_aggregator_leave_the_chain_out(
    chains: dict[str, DeployedChain], service: QuotingService
) -> None:
    ethereum, polygon = chains[ETHEREUM], chains[POLYGON]
    guardian = devnet_signer(Role.GUARDIAN).address
    manager = ethereum.contract("CollateralManager")
    ethereum.w3.eth.wait_for_transaction_receipt(
        manager.functions.freezeCollateral(ethereum.record.address("WETH")).transact({"from": guardian})
    )
    total = polygon.contract("CollateralManager").functions.collateralConfig(polygon.record.address("WETH")).call()[4]
    _set_weth(polygon, supply_cap=total + 10**18 // 2)  # room for half a WETH: the request posts one

    quoted = await service.request_credit(borrower_file(), SPEC)

    assert quoted.request.status == "no_offers"
    outcomes = _outcomes(quoted)
    frozen = "WETH collateral is frozen on ethereum-local: no new loan may post it"
    capped = "WETH's collateral supply cap on polygon-local is reached: room for 0.50 WETH"
    assert outcomes[f"pool:{ETHEREUM}"] == ("ineligible", frozen)
    assert outcomes[f"pool:{POLYGON}"] == ("ineligible", capped)
    assert outcomes["bank"] == ("ineligible", f"{frozen}; {capped}")
    assert outcomes["pool:arbitrum-local"] == ("ineligible", "lends on arbitrum-local, none of the requested chains")
    # declined for the collateral (``aggregator.quote_adverse``): its terms first, then the lender on another chain
    risk = quoted.request.risk
    assert (risk["approved"], risk["assessed"]["approved"]) == (False, True)
    assert risk["reasons"] == [
        {
            "code": "R45",
            "text": f"Collateral not accepted for the amount requested on the networks requested: {frozen}",
        },
        {
            "code": "R46",
            "text": "No lender offered credit on the terms requested: pool:arbitrum-local ineligible: lends on "
            "arbitrum-local, none of the requested chains",
        },
    ]


async def test_a_paused_credit_aggregator_leaves_its_chain_out_for_every_lender(
    chains: dict[str, DeployedChain], service: QuotingService
) -> None:
    ethereum = chains[ETHEREUM]
    aggregator = ethereum.contract("CreditAggregator")
    guardian = devnet_signer(Role.GUARDIAN).address
    ethereum.w3.eth.wait_for_transaction_receipt(aggregator.functions.pause().transact({"from": guardian}))

    quoted = await service.request_credit(borrower_file(), SPEC)

    assert quoted.request.status == "quoted"
    assert {q.chain_name for q in quoted.quotes} == {POLYGON}, "the bank's offer too: openLoan would revert"
    assert _outcomes(quoted)[f"pool:{ETHEREUM}"] == (
        "ineligible",
        "the CreditAggregator on ethereum-local is paused: it opens no loan until unpaused",
    )


async def test_the_limits_are_read_once_per_chain_and_kept_for_their_ttl(
    chains: dict[str, DeployedChain], service: QuotingService
) -> None:
    ethereum = chains[ETHEREUM]
    runtimes = service._chains
    clock = [0.0]
    limits = CollateralLimits(runtimes, ttl=5.0, clock=lambda: clock[0])
    weth = Asset("WETH", 18, Decimal(3000), {name: chain.record.address("WETH") for name, chain in chains.items()})
    first = await limits.read([ETHEREUM, POLYGON], weth)
    assert {name: (limit.ltv_bps, limit.frozen) for name, limit in first.items()} == {
        ETHEREUM: (8_000, False),
        POLYGON: (8_000, False),
    }
    _set_weth(ethereum, ltv_bps=4_500)
    clock[0] = 4.9
    assert (await limits.read([ETHEREUM], weth))[ETHEREUM].ltv_bps == 8_000, "kept within the ttl"
    clock[0] = 5.0
    assert (await limits.read([ETHEREUM], weth))[ETHEREUM].ltv_bps == 4_500, "read again past it"


async def test_each_chain_judges_the_loan_on_its_own_price_of_the_collateral(
    chains: dict[str, DeployedChain], service: QuotingService
) -> None:
    """The request is valued on ethereum-local's feeds (WETH at 3,000: 1,500 USDC is 50% of 1 WETH), but
    polygon-local's CollateralManager values the WETH on its own feeds (1,700: 88%, above the grade's 80%), so a
    quote signed there would revert at the accept. polygon-local is left out with the reason; ethereum-local is
    quoted, the bank's offer placed there."""
    Harness(chains[POLYGON]).set_weth_price(1_700)

    quoted = await service.request_credit(borrower_file(), SPEC)

    assert quoted.request.status == "quoted"
    placed = {(q.provider_id, q.chain_name) for q in quoted.quotes}
    assert placed == {("bank", ETHEREUM), (f"pool:{ETHEREUM}", ETHEREUM)}
    outcome, reason = _outcomes(quoted)[f"pool:{POLYGON}"]
    assert outcome == "ineligible"
    assert reason.startswith("the amount is above 80.00% of the collateral's value"), reason
    assert POLYGON in reason


async def test_an_offer_is_quoted_only_when_the_collateral_carries_its_debt_at_maturity(
    chains: dict[str, DeployedChain], service: QuotingService
) -> None:
    """1 WETH at 3,000 for a year, grade A (80%): 2,390 USDC is within the LTV as a principal, but at the bank's 9%
    and the pool's 8% its debt at maturity is past 79.99% of the collateral's value, and both offers are dropped;
    2,150 USDC at 9% stays within it and is quoted. On the chain, the two loans at 9% held at unchanged prices: the
    dropped one's health factor falls below 1 (liquidatable) months before it is due, the quoted one's never does."""
    ethereum = chains[ETHEREUM]
    at_limit = replace(SPEC, amount="2390.00", term_days=365, preferred_chains=(ETHEREUM,))

    quoted = await service.request_credit(borrower_file(), at_limit)

    assert quoted.request.status == "no_offers"
    outcomes = _outcomes(quoted)
    for provider in ("bank", f"pool:{ETHEREUM}"):
        outcome, reason = outcomes[provider]
        assert outcome == "dropped"
        assert reason.startswith("dropped: the debt its schedule reaches, "), reason
        assert f"is above 80.00% of the collateral's value on {ETHEREUM} (2399.70 USDC)" in reason
    assert outcomes["bank"][1].startswith("dropped: the debt its schedule reaches, 2605.10 USDC")

    within = await service.request_credit(borrower_file(), replace(at_limit, amount="2150.00"))
    assert within.request.status == "quoted"
    assert {q.provider_id for q in within.quotes} == {"bank", f"pool:{ETHEREUM}"}

    harness = Harness(ethereum)
    borrower = Account.create()
    harness.impersonate(borrower.address)
    harness.fund(borrower.address, weth=2 * WETH)
    harness.approve_all(borrower.address)
    loans = {
        amount: harness.open_loan(
            borrower,
            pool=False,
            principal=amount * USDC,
            originationFee=0,
            rateBps=900,
            term=365 * 86_400,
            attestation={"grade": 1, "maxLtvBps": 8_000},
        )[0]
        for amount in (2_390, 2_150)
    }
    lowest = {amount: 2**256 - 1 for amount in loans}  # health factors, 18 decimals
    for _ in range(73):  # a year, five days at a time, the feeds kept fresh at the same prices
        harness.advance(5 * 86_400 - 60)
        harness.set_weth_price(3_000)
        harness.send(harness.usdc_feed.functions.setAnswer(10**8), DEPLOYER)
        for amount, loan_id in loans.items():
            lowest[amount] = min(lowest[amount], harness.manager.functions.healthFactor(loan_id).call())
    assert lowest[2_390] < 10**18, "the loan quoted before would have been liquidated before it was due"
    assert lowest[2_150] > 10**18
