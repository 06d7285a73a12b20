"""``cancelUnfunded``: the operator ends a loan funded off-chain whose lender never paid the principal out, and the
borrower's collateral goes back as a full repayment's does — once, and for no other loan."""

from __future__ import annotations

import pytest
from eth_utils.crypto import keccak
from web3.logs import DISCARD

from chain.artifacts import load_artifact
from tests.contracts.harness import BORROWERS, DEPLOYER, OPERATOR, USDC, WETH, Harness, simple_interest_up
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.contracts

BORROWER = BORROWERS[0]
OTHER = BORROWERS[1]
LIQUIDATOR = BORROWERS[3]
ACTIVE, REPAID, DEFAULTED, CANCELLED = 1, 2, 3, 5
OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")


@pytest.fixture
def h(ethereum_local: DeployedChain) -> Harness:
    harness = Harness(ethereum_local)
    for account in (BORROWER, OTHER, LIQUIDATOR):
        harness.approve_all(account.address)
    harness.fund(LIQUIDATOR.address, usdc=100_000 * USDC)
    return harness


def test_the_operator_cancels_an_unfunded_traditional_loan_once_and_the_collateral_goes_back(h: Harness) -> None:
    loan_id, _ = h.open_loan(BORROWER, pool=False)
    h.advance(10 * 86_400)  # interest accrues on a principal never paid out
    assert h.aggregator.functions.amountOwed(loan_id).call()[1] > 0
    weth_before = h.weth.functions.balanceOf(BORROWER.address).call()

    receipt = h.send(h.aggregator.functions.cancelUnfunded(loan_id), OPERATOR)

    cancelled = h.aggregator.events.LoanCancelled().process_receipt(receipt, errors=DISCARD)
    closed = h.aggregator.events.LoanClosed().process_receipt(receipt, errors=DISCARD)
    (removed,) = h.manager.events.CollateralRemoved().process_receipt(receipt, errors=DISCARD)
    assert [e["args"]["loanId"] for e in (*cancelled, *closed)] == [loan_id, loan_id]
    assert cancelled[0]["logIndex"] < closed[0]["logIndex"], "cancelled first: the ledger reads the outcome from it"
    assert (removed["args"]["to"], removed["args"]["amount"]) == (BORROWER.address, WETH)
    assert h.weth.functions.balanceOf(BORROWER.address).call() == weth_before + WETH
    loan = h.loan(loan_id)
    assert (loan["status"], loan["outstandingPrincipal"], loan["accruedInterest"]) == (CANCELLED, 0, 0)
    assert loan["collateralAmount"] == 0
    assert h.aggregator.functions.amountOwed(loan_id).call() == [0, 0]
    h.advance(86_400)
    assert h.aggregator.functions.amountOwed(loan_id).call() == [0, 0], "no interest accrues on a cancelled loan"

    # ended: not cancelled twice, nor repaid, defaulted or liquidated afterwards
    error = h.revert_of(h.aggregator.functions.cancelUnfunded(loan_id), OPERATOR)
    assert (error.name, error.args) == ("LoanNotActive", (loan_id,))
    for call in (
        h.aggregator.functions.recordOffchainRepayment(loan_id, USDC, keccak(text="late")),
        h.aggregator.functions.markDefault(loan_id),
    ):
        assert h.revert_of(call, OPERATOR).name == "LoanNotActive"
    assert h.revert_of(h.manager.functions.claimCollateral(loan_id), OTHER).name == "NothingToClaim"


def test_cancel_is_refused_for_a_pool_loan_a_repaid_or_defaulted_loan_and_anyone_but_the_operator(h: Harness) -> None:
    unfunded, _ = h.open_loan(BORROWER, pool=False)
    error = h.revert_of(h.aggregator.functions.cancelUnfunded(unfunded), BORROWER)
    assert error.name == "AccessControlUnauthorizedAccount"

    pool_loan, _ = h.open_loan(BORROWER)  # funded from the pool in the same transaction: never unfunded
    error = h.revert_of(h.aggregator.functions.cancelUnfunded(pool_loan), OPERATOR)
    assert (error.name, error.args) == ("NotTraditionalLoan", (pool_loan,))

    partly, _ = h.open_loan(BORROWER, pool=False)
    h.send(h.aggregator.functions.recordOffchainRepayment(partly, 100 * USDC, keccak(text="p1")), OPERATOR)
    error = h.revert_of(h.aggregator.functions.cancelUnfunded(partly), OPERATOR)
    assert (error.name, error.args) == ("LoanHasRepayments", (partly,))

    interest_only, _ = h.open_loan(BORROWER, pool=False)
    h.advance(86_400)
    # exactly the interest owed in the next block: the principal, and the interest left (none), look untouched
    at = h.now() + 1
    h.w3.provider.make_request("evm_setNextBlockTimestamp", [at])  # type: ignore[arg-type]
    before = h.loan(interest_only)
    interest = simple_interest_up(1_500 * USDC, 900, at - int(before["lastAccrual"]))
    h.send(h.aggregator.functions.recordOffchainRepayment(interest_only, interest, keccak(text="i1")), OPERATOR)
    loan = h.loan(interest_only)
    assert (loan["outstandingPrincipal"], loan["accruedInterest"]) == (1_500 * USDC, 0)
    error = h.revert_of(h.aggregator.functions.cancelUnfunded(interest_only), OPERATOR)
    assert error.name == "LoanHasRepayments"

    repaid, _ = h.open_loan(BORROWER, pool=False)
    h.send(h.aggregator.functions.recordOffchainRepayment(repaid, 10_000 * USDC, keccak(text="all")), OPERATOR)
    assert h.loan(repaid)["status"] == REPAID
    assert h.revert_of(h.aggregator.functions.cancelUnfunded(repaid), OPERATOR).name == "LoanNotActive"

    h.advance(38 * 86_400)
    h.send(h.aggregator.functions.markDefault(unfunded), OPERATOR)
    assert h.loan(unfunded)["status"] == DEFAULTED
    assert h.revert_of(h.aggregator.functions.cancelUnfunded(unfunded), OPERATOR).name == "LoanNotActive"
    assert h.revert_of(h.aggregator.functions.cancelUnfunded(999), OPERATOR).name == "LoanNotActive"


def test_a_traditional_loan_a_liquidation_paid_its_lender_from_cannot_be_cancelled(h: Harness) -> None:
    loan_id, _ = h.open_loan(BORROWER, pool=False, principal=2_000 * USDC, originationFee=0)
    h.set_weth_price(2_400)  # health factor 0.99: a partial liquidation, the loan stays active
    h.send(h.manager.functions.liquidate(loan_id, 5_000 * USDC), LIQUIDATOR)
    h.set_weth_price(3_000)
    assert h.loan(loan_id)["status"] == ACTIVE
    error = h.revert_of(h.aggregator.functions.cancelUnfunded(loan_id), OPERATOR)
    assert (error.name, error.args) == ("LoanHasRepayments", (loan_id,))


def test_a_cancelled_loans_collateral_the_token_refuses_to_push_is_claimable(h: Harness) -> None:
    artifact = load_artifact("MockBlockingERC20")
    factory = h.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = h.w3.eth.wait_for_transaction_receipt(
        factory.constructor("Blocking", "BLK", 18).transact({"from": DEPLOYER.address})
    )
    token = h.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)
    h.impersonate(h.timelock.address)
    h.send(h.manager.functions.setPriceFeed(token.address, h.weth_feed.address, 3_600), h.timelock.address)
    h.send(h.manager.functions.setCollateralParameters(token.address, 8_000, 8_250, 500, 10**24), h.timelock.address)
    h.send(token.functions.mint(BORROWER.address, WETH), DEPLOYER)
    h.send(token.functions.approve(h.aggregator.address, WETH), BORROWER)
    loan_id, _ = h.open_loan(BORROWER, pool=False, collateralAsset=token.address)

    h.send(token.functions.setBlocked(BORROWER.address, True), DEPLOYER)
    receipt = h.send(h.aggregator.functions.cancelUnfunded(loan_id), OPERATOR)
    (claimable,) = h.manager.events.CollateralClaimable().process_receipt(receipt, errors=DISCARD)
    assert (claimable["args"]["borrower"], claimable["args"]["amount"]) == (BORROWER.address, WETH)
    assert h.loan(loan_id)["status"] == CANCELLED
    h.send(token.functions.setBlocked(BORROWER.address, False), DEPLOYER)
    h.send(h.manager.functions.claimCollateral(loan_id), OTHER)  # a cancelled loan is closed: anyone may claim
    assert token.functions.balanceOf(BORROWER.address).call() == WETH


def test_the_operator_holds_the_liquidation_of_an_unfunded_loan_until_it_is_cancelled(h: Harness) -> None:
    # The audit's scenario: the lender refused to pay out (the accept is fund-refused), WETH dips to a health factor
    # of 0.99 before the operator cancels; anyone liquidated, the lender that never lent was paid from the
    # borrower's collateral and the liquidation's repaid flag made the cancellation revert LoanHasRepayments.
    loan_id, _ = h.open_loan(BORROWER, pool=False, principal=2_000 * USDC, originationFee=0, rateBps=900)
    receipt = h.send(h.manager.functions.holdLiquidation(loan_id), OPERATOR)
    (held,) = h.manager.events.LiquidationHoldChanged().process_receipt(receipt, errors=DISCARD)
    assert (held["args"]["loanId"], held["args"]["held"]) == (loan_id, True)
    assert h.manager.functions.liquidationHeld(loan_id).call()
    h.set_weth_price(2_400)
    assert h.manager.functions.healthFactor(loan_id).call() < 10**18
    error = h.revert_of(h.manager.functions.liquidate(loan_id, 10_000 * USDC), LIQUIDATOR)
    assert (error.name, error.args) == ("LiquidationHeld", (loan_id,))

    weth_before = h.weth.functions.balanceOf(BORROWER.address).call()
    h.send(h.aggregator.functions.cancelUnfunded(loan_id), OPERATOR)
    assert h.loan(loan_id)["status"] == CANCELLED
    assert h.weth.functions.balanceOf(BORROWER.address).call() == weth_before + WETH  # all of it back


def test_only_the_aggregators_operator_holds_only_an_active_traditional_loan_and_a_release_lifts_it(
    h: Harness,
) -> None:
    loan_id, _ = h.open_loan(BORROWER, pool=False, principal=2_000 * USDC, originationFee=0, rateBps=900)
    for call in (h.manager.functions.holdLiquidation(loan_id), h.manager.functions.releaseLiquidationHold(loan_id)):
        error = h.revert_of(call, LIQUIDATOR)
        assert (error.name, error.args) == ("AccessControlUnauthorizedAccount", (LIQUIDATOR.address, OPERATOR_ROLE))
    pool_loan, _ = h.open_loan(BORROWER)  # funded in the same transaction: nothing to hold
    error = h.revert_of(h.manager.functions.holdLiquidation(pool_loan), OPERATOR)
    assert (error.name, error.args) == ("NotTraditionalLoan", (pool_loan,))
    assert h.revert_of(h.manager.functions.holdLiquidation(999), OPERATOR).name == "LoanNotActive"

    h.send(h.manager.functions.holdLiquidation(loan_id), OPERATOR)
    # the lender paid out after all: the operator releases the hold and the loan is liquidatable again
    receipt = h.send(h.manager.functions.releaseLiquidationHold(loan_id), OPERATOR)
    (released,) = h.manager.events.LiquidationHoldChanged().process_receipt(receipt, errors=DISCARD)
    assert (released["args"]["loanId"], released["args"]["held"]) == (loan_id, False)
    assert not h.manager.functions.liquidationHeld(loan_id).call()
    h.set_weth_price(2_400)
    receipt = h.send(h.manager.functions.liquidate(loan_id, 10_000 * USDC), LIQUIDATOR)
    assert h.manager.events.LoanLiquidated().process_receipt(receipt, errors=DISCARD)
