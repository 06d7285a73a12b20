"""A fall in a pool loan's impairment (a price recovery, a repayment, a write-off smaller than expected) vests into
`totalAssets` over `IMPAIRMENT_REVERSAL_VESTING` instead of stepping the share price up at once: the audit's
one-block captures (deposit, lower the impairment, redeem) on the devnet harness, asserting the fixed behaviour
(each failed before the fix)."""

from __future__ import annotations

from typing import Any

import pytest
from hexbytes import HexBytes
from web3.logs import DISCARD

from tests.contracts.harness import BORROWERS, DEPLOYER, GUARDIAN, OPERATOR, USDC, WETH, Harness
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.contracts

BORROWER = BORROWERS[0]
KEEPER = BORROWERS[1]
SEARCHER = BORROWERS[2]
LIQUIDATOR = BORROWERS[3]
VESTING = 7 * 86_400
FLASH = 5_000_000 * USDC


@pytest.fixture
def h(ethereum_local: DeployedChain) -> Harness:
    harness = Harness(ethereum_local)
    for account in (BORROWER, KEEPER, SEARCHER, LIQUIDATOR):
        harness.approve_all(account.address)
    return harness


def _impaired_loan(h: Harness) -> tuple[int, int]:
    """The audit's setup: a 200k loan against 100 WETH, WETH 3,000 -> 1,500, impaired by a keeper (≈ 57,142)."""
    h.fund(BORROWER.address, weth=100 * WETH)
    loan_id, _ = h.open_loan(
        BORROWER,
        principal=200_000 * USDC,
        originationFee=0,
        collateralAmount=100 * WETH,
        rateBps=h.min_rate(200_000 * USDC),
    )
    h.send(h.manager.functions.pauseLiquidations(), GUARDIAN)  # no liquidator acts meanwhile
    h.set_weth_price(1_500)
    h.send(h.aggregator.functions.impair(loan_id), KEEPER)
    impairment = int(h.pool.functions.impairmentOf(loan_id).call())
    assert 57_142 * USDC < impairment < 57_150 * USDC
    return loan_id, impairment


def _redeemable_after_deposit(h: Harness, assets: int) -> int:
    """Shares a deposit of ``assets`` in the next block mints at least: ``previewDeposit`` reads the latest block,
    and the pool's interest accrued by the next one's timestamp mints a few shares fewer (a flaky revert of the
    redeem in CI), so a ten-millionth (0.5 USDC of 5M) is left in the pool."""
    shares = int(h.pool.functions.previewDeposit(assets).call())
    return shares - shares // 10**7


def _in_one_block(h: Harness, sender: Any, calls: list[Any]) -> None:
    """Sends `calls` from `sender` in one block (automine off), each of which must succeed."""
    w3 = h.w3
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        nonce = w3.eth.get_transaction_count(sender.address)
        hashes: list[HexBytes] = [
            call.transact({"from": sender.address, "nonce": nonce + k, "gas": 800_000}) for k, call in enumerate(calls)
        ]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    finally:
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    receipts = [w3.eth.get_transaction_receipt(tx) for tx in hashes]
    assert [r["status"] for r in receipts] == [1] * len(calls)
    assert len({r["blockNumber"] for r in receipts}) == 1


def test_a_lifted_impairment_cannot_be_captured_in_one_block_and_vests_to_the_lenders(h: Harness) -> None:
    loan_id, impairment = _impaired_loan(h)
    h.set_weth_price(3_000)  # WETH recovers: the impairment is stale until someone calls impair
    lender_shares = h.pool.functions.balanceOf(DEPLOYER.address).call()
    lender_before = h.pool.functions.convertToAssets(lender_shares).call()
    total_before = h.pool.functions.totalAssets().call()

    h.fund(SEARCHER.address, usdc=FLASH)
    start = h.usdc.functions.balanceOf(SEARCHER.address).call()
    shares = _redeemable_after_deposit(h, FLASH)
    _in_one_block(
        h,
        SEARCHER,
        [
            h.pool.functions.deposit(FLASH, SEARCHER.address),
            h.aggregator.functions.impair(loan_id),
            h.pool.functions.redeem(shares, SEARCHER.address, SEARCHER.address),
        ],
    )
    # Before: the searcher took 41,152 USDC of the lenders' reversal; now the share price did not move in the block.
    assert h.usdc.functions.balanceOf(SEARCHER.address).call() <= start
    assert h.pool.functions.impairmentOf(loan_id).call() == 0
    assert h.pool.functions.totalImpairment().call() == 0
    assert h.pool.functions.unvestedImpairmentReversals().call() == impairment
    assert h.pool.functions.totalAssets().call() - total_before < 10 * USDC  # a few seconds' interest, no step

    # The lenders who bore the impairment get it back linearly over the vesting period.
    h.advance(VESTING // 2)
    assert abs(h.pool.functions.unvestedImpairmentReversals().call() - impairment // 2) <= USDC
    h.advance(VESTING // 2)
    assert h.pool.functions.unvestedImpairmentReversals().call() == 0
    lender_after = h.pool.functions.convertToAssets(lender_shares).call()
    assert lender_after - lender_before >= impairment  # the reversal, plus a week's interest


def test_a_borrower_cannot_repay_an_impaired_loan_at_a_discount_with_a_flash_deposit(h: Harness) -> None:
    # The audit's second scenario: a defaulted loan impaired at once by markDefault; its borrower deposits, repays
    # the impairment's amount and redeems in one block, so that the pool's step up paid most of the repayment.
    h.fund(BORROWER.address, weth=100 * WETH)
    loan_id, _ = h.open_loan(
        BORROWER,
        principal=200_000 * USDC,
        originationFee=0,
        collateralAmount=100 * WETH,
        rateBps=h.min_rate(200_000 * USDC),
    )
    h.set_weth_price(1_500)
    h.advance(38 * 86_400)
    h.set_weth_price(1_500)  # a fresh round
    h.send(h.aggregator.functions.markDefault(loan_id), OPERATOR)
    impairment = int(h.pool.functions.impairmentOf(loan_id).call())
    assert impairment > 57_000 * USDC
    h.fund(BORROWER.address, usdc=FLASH + impairment)
    usdc_before = h.usdc.functions.balanceOf(BORROWER.address).call()
    debt_before = sum(h.aggregator.functions.amountOwed(loan_id).call())
    shares = _redeemable_after_deposit(h, FLASH)
    _in_one_block(
        h,
        BORROWER,
        [
            h.pool.functions.deposit(FLASH, BORROWER.address),
            h.aggregator.functions.repay(loan_id, impairment),
            h.pool.functions.redeem(shares, BORROWER.address, BORROWER.address),
        ],
    )
    cost = usdc_before - h.usdc.functions.balanceOf(BORROWER.address).call()
    debt_repaid = debt_before - sum(h.aggregator.functions.amountOwed(loan_id).call())
    assert debt_repaid == impairment
    assert cost >= debt_repaid  # before: about 13,000 for 57,000 of debt
    assert h.pool.functions.unvestedImpairmentReversals().call() == impairment


def test_a_new_impairment_takes_back_a_reversal_still_vesting_and_never_steps_the_price_up(h: Harness) -> None:
    loan_id, impairment = _impaired_loan(h)
    h.set_weth_price(3_000)
    h.send(h.aggregator.functions.impair(loan_id), KEEPER)  # lifted: vesting
    h.advance(VESTING // 7)
    h.set_weth_price(1_500)  # falls again before the reversal has vested
    total_before = h.pool.functions.totalAssets().call()
    left = h.pool.functions.unvestedImpairmentReversals().call()
    assert abs(left - impairment * 6 // 7) <= USDC
    h.send(h.aggregator.functions.impair(loan_id), KEEPER)
    again = int(h.pool.functions.impairmentOf(loan_id).call())
    # The loss is counted once: what was still vesting comes back out first, the rest lowers the price at once
    # (before, the whole impairment did, with the reversal still to vest on top of it).
    assert h.pool.functions.unvestedImpairmentReversals().call() == 0
    assert abs(total_before - h.pool.functions.totalAssets().call() - (again - left)) <= USDC


def test_a_write_off_smaller_than_the_impairment_vests_the_difference(h: Harness) -> None:
    # Impaired at WETH 1,000 (≈ 104,762 expected), liquidated at 1,500: the collateral runs out and ≈ 57,142 is
    # written off. Before, the ≈ 47,600 difference stepped the share price up inside the liquidation.
    h.fund(BORROWER.address, weth=100 * WETH)
    loan_id, _ = h.open_loan(
        BORROWER,
        principal=200_000 * USDC,
        originationFee=0,
        collateralAmount=100 * WETH,
        rateBps=h.min_rate(200_000 * USDC),
    )
    h.set_weth_price(1_000)
    h.send(h.aggregator.functions.impair(loan_id), KEEPER)
    impairment = int(h.pool.functions.impairmentOf(loan_id).call())
    assert 104_761 * USDC < impairment < 104_770 * USDC
    h.set_weth_price(1_500)
    h.fund(LIQUIDATOR.address, usdc=300_000 * USDC)
    total_before = h.pool.functions.totalAssets().call()
    receipt = h.send(h.manager.functions.liquidate(loan_id, 300_000 * USDC), LIQUIDATOR)
    (loss,) = h.pool.events.LossRealized().process_receipt(receipt, errors=DISCARD)
    lost = loss["args"]["principalLost"] + loss["args"]["interestLost"]
    assert 57_142 * USDC < lost < 57_150 * USDC
    assert h.pool.functions.totalImpairment().call() == 0
    assert abs(h.pool.functions.totalAssets().call() - total_before) <= 2  # the expected loss realised, no step
    vesting = h.pool.functions.unvestedImpairmentReversals().call()
    assert abs(vesting - (impairment - lost)) <= USDC  # the lenders' interest share of the loss aside
    h.advance(VESTING)
    assert h.pool.functions.totalAssets().call() >= total_before + vesting
