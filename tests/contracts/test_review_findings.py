"""The findings of the contract review (issue 19), each as the scenario that reproduced it on the devnet harness,
asserting the fixed behaviour (each failed before its fix)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_utils.crypto import keccak
from web3.logs import DISCARD

from chain.artifacts import load_artifact
from tests.contracts.harness import (
    BORROWERS,
    DEPLOYER,
    GUARDIAN,
    OPERATOR,
    QUOTE_SIGNER,
    RELAYER,
    USDC,
    WETH,
    Harness,
)
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.contracts

BORROWER = BORROWERS[0]
OTHER = BORROWERS[1]
LIQUIDATOR = BORROWERS[3]
RELAYER_ROLE = keccak(text="RELAYER_ROLE")
REPAID, DEFAULTED, LIQUIDATED = 2, 3, 4


@pytest.fixture
def h(ethereum_local: DeployedChain) -> Harness:
    harness = Harness(ethereum_local)
    for account in (BORROWER, OTHER, LIQUIDATOR):
        harness.approve_all(account.address)
    harness.fund(LIQUIDATOR.address, usdc=100_000 * USDC)
    return harness


# ---------------------------------------------------------------------- L-7: only the platform opens loans


def test_only_the_relayer_opens_loans(h: Harness) -> None:
    offer = h.offer(BORROWER.address)
    args = h.open_args(offer, BORROWER.key)
    # The borrower (or a mempool copier) submitting the platform's signed offer itself is refused...
    for sender in (BORROWER, OTHER):
        error = h.revert_of(h.aggregator.functions.openLoan(*args), sender)
        assert (error.name, error.args) == ("AccessControlUnauthorizedAccount", (sender.address, RELAYER_ROLE))
    permit = (0, 0, 0, b"\x00" * 32, b"\x00" * 32)
    error = h.revert_of(h.aggregator.functions.openLoanWithPermit(*args, permit), BORROWER)
    assert error.name == "AccessControlUnauthorizedAccount"
    # ...and the relayer, which deploy.py granted the role, opens it.
    assert h.aggregator.functions.hasRole(RELAYER_ROLE, RELAYER.address).call()
    h.send(h.aggregator.functions.openLoan(*args), RELAYER)


def test_quote_signer_cancels_outstanding_offers_at_once(h: Harness) -> None:
    first = h.offer(BORROWER.address)
    second = h.offer(BORROWER.address)
    word, bits = first.nonce >> 8, (1 << (first.nonce & 0xFF)) | (1 << (second.nonce & 0xFF))
    assert second.nonce >> 8 == word
    # Anyone else invalidating touches only its own nonces.
    h.send(h.aggregator.functions.invalidateNonces(word, bits), OTHER)
    assert not h.aggregator.functions.nonceUsed(QUOTE_SIGNER.address, first.nonce).call()
    receipt = h.send(h.aggregator.functions.invalidateNonces(word, bits), QUOTE_SIGNER)
    (event,) = h.aggregator.events.NoncesInvalidated().process_receipt(receipt, errors=DISCARD)
    assert (event["args"]["signer"], event["args"]["word"], event["args"]["mask"]) == (QUOTE_SIGNER.address, word, bits)
    for offer in (first, second):
        assert h.aggregator.functions.nonceUsed(QUOTE_SIGNER.address, offer.nonce).call()
        error = h.revert_of(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key)), RELAYER)
        assert error.name == "OfferAlreadyUsed"


# ---------------------------------------------------------------------- M-3: the grade's LTV for the loan's life


def test_attestation_is_bound_to_its_offer_and_used_up_with_it(h: Harness) -> None:
    offer = h.offer(BORROWER.address)
    attestation = h.attestation(offer)
    other = h.offer(BORROWER.address)
    error = h.revert_of(
        h.aggregator.functions.openLoan(*h.open_args(other, BORROWER.key, attestation=attestation)), RELAYER
    )
    assert (error.name, error.args) == ("AttestationOfferMismatch", (offer.nonce, other.nonce))
    h.send(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key, attestation=attestation)), RELAYER)
    # The same attestation with the same offer's terms re-signed under its nonce: the nonce is spent.
    again = dataclasses.replace(offer, principal=offer.principal // 2)
    error = h.revert_of(
        h.aggregator.functions.openLoan(*h.open_args(again, BORROWER.key, attestation=attestation)), RELAYER
    )
    assert error.name == "OfferAlreadyUsed"


def test_grade_e_ltv_cap_holds_on_every_withdrawal(h: Harness) -> None:
    # The review's scenario: grade E (40% cap) opened at 40%, then collateral withdrawn to 78.4% LTV.
    loan_id, _ = h.open_loan(
        BORROWER, principal=1_200 * USDC, collateralAmount=WETH, attestation={"grade": 5, "maxLtvBps": 4_000}
    )
    assert h.loan(loan_id)["maxLtvBps"] == 4_000
    # the blocks below at the opening's second: a second's interest would put "exactly 40%" a basis point over it
    h.hold_time()
    h.send(h.manager.functions.addCollateral(loan_id, WETH), BORROWER)  # 20%
    to_78 = 2 * WETH - 1_200 * WETH // (3_000 * 784 // 1_000)  # leaves 1,200 / 0.784 / 3,000 WETH
    error = h.revert_of(h.manager.functions.withdrawCollateral(loan_id, to_78, BORROWER.address), BORROWER)
    assert error.name == "LtvAboveAttestation"
    assert error.args[1] == 4_000
    assert 7_800 <= error.args[0] <= 7_850
    # Back to exactly 40% is allowed; a wei more is not.
    h.hold_time()
    h.send(h.manager.functions.withdrawCollateral(loan_id, WETH, BORROWER.address), BORROWER)
    error = h.revert_of(h.manager.functions.withdrawCollateral(loan_id, 10**12, BORROWER.address), BORROWER)
    assert (error.name, error.args[1]) == ("LtvAboveAttestation", 4_000)


# ---------------------------------------------------------------------- M-4: a defaulted borrower can still repay


def _defaulted(h: Harness, **changes: Any) -> int:
    loan_id, _ = h.open_loan(BORROWER, **changes)
    h.advance(38 * 86_400)  # 30-day term, 7-day grace period
    h.send(h.aggregator.functions.markDefault(loan_id), OPERATOR)
    assert h.loan(loan_id)["status"] == DEFAULTED
    return loan_id


def test_defaulted_pool_loan_can_be_repaid_and_closed_even_with_liquidations_paused(h: Harness) -> None:
    loan_id = _defaulted(h)
    h.send(h.manager.functions.pauseLiquidations(), GUARDIAN)
    principal, interest = h.aggregator.functions.amountOwed(loan_id).call()
    h.advance(86_400)
    assert h.aggregator.functions.amountOwed(loan_id).call() == [principal, interest]  # accrual stopped
    receipt = h.send(h.aggregator.functions.repay(loan_id, interest + 100 * USDC), BORROWER)
    (event,) = h.pool.events.LoanRepaymentReceived().process_receipt(receipt, errors=DISCARD)
    assert (event["args"]["interestPaid"], event["args"]["principalPaid"]) == (interest, 100 * USDC)
    assert h.pool.functions.issuanceRate().call() == 0  # the pool stopped counting its interest at the default
    weth_before = h.weth.functions.balanceOf(BORROWER.address).call()
    h.send(h.aggregator.functions.close(loan_id), BORROWER)
    assert h.loan(loan_id)["status"] == REPAID
    assert h.weth.functions.balanceOf(BORROWER.address).call() == weth_before + WETH
    assert h.pool.functions.totalBorrowed().call() == 0


def test_late_offchain_payment_is_recorded_and_no_liquidator_pays_the_lender_twice(h: Harness) -> None:
    loan_id = _defaulted(h, pool=False)
    h.govern(h.aggregator, "setSettlementAddress", keccak(text="sim-bank"), OTHER.address)
    principal, interest = h.aggregator.functions.amountOwed(loan_id).call()
    weth_before = h.weth.functions.balanceOf(BORROWER.address).call()
    paid = principal + interest
    h.send(h.aggregator.functions.recordOffchainRepayment(loan_id, paid, keccak(text="late")), OPERATOR)
    assert h.loan(loan_id)["status"] == REPAID
    assert h.weth.functions.balanceOf(BORROWER.address).call() == weth_before + WETH
    assert h.revert_of(h.manager.functions.liquidate(loan_id, 10_000 * USDC), LIQUIDATOR).name == "LoanNotActive"


# ---------------------------------------------------------------------- M-1: no exit ahead of a known loss


def _share_price(h: Harness) -> int:
    """Assets per 10^12 shares (share amounts equal asset amounts at par on the devnet pool)."""
    return int(h.pool.functions.convertToAssets(10**12).call())


def test_impairment_recognises_a_known_loss_before_any_lender_exits(h: Harness) -> None:
    # The review's scenario: a 200k loan against 100 WETH; WETH falls 3,000 -> 1,500 (health 0.62).
    leaver, stayer = LIQUIDATOR, DEPLOYER  # the deployer seeded the pool
    h.fund(leaver.address, usdc=1_000_000 * USDC)
    h.send(h.pool.functions.deposit(1_000_000 * USDC, leaver.address), leaver)
    h.fund(BORROWER.address, weth=100 * WETH)
    loan_id, _ = h.open_loan(
        BORROWER,
        principal=200_000 * USDC,
        originationFee=0,
        collateralAmount=100 * WETH,
        rateBps=h.min_rate(200_000 * USDC),
    )
    par = _share_price(h)
    h.set_weth_price(1_500)
    assert _share_price(h) >= par  # the price alone does not move the share price: the loss is not known yet
    assert h.manager.functions.healthFactor(loan_id).call() < 63 * 10**16

    total_before = h.pool.functions.totalAssets().call()
    receipt = h.send(h.aggregator.functions.impair(loan_id), OTHER)  # anyone may
    (event,) = h.aggregator.events.LoanImpaired().process_receipt(receipt, errors=DISCARD)
    loss = event["args"]["expectedLoss"]
    assert 57_142 * USDC < loss < 57_150 * USDC  # 200,000 − 150,000 / 1.05, plus a few seconds of interest
    assert h.pool.functions.impairmentOf(loan_id).call() == loss
    assert abs(total_before - loss - h.pool.functions.totalAssets().call()) <= USDC
    impaired = _share_price(h)
    assert impaired < par

    shares = h.pool.functions.balanceOf(leaver.address).call()
    receipt = h.send(h.pool.functions.redeem(shares, leaver.address, leaver.address), leaver)
    (withdrawn,) = h.pool.events.Withdraw().process_receipt(receipt, errors=DISCARD)
    leaver_price = withdrawn["args"]["assets"] * 10**12 // shares

    h.fund(OTHER.address, usdc=200_000 * USDC)
    h.send(h.manager.functions.liquidate(loan_id, 300_000 * USDC), OTHER)
    assert h.loan(loan_id)["status"] == LIQUIDATED
    assert h.pool.functions.impairmentOf(loan_id).call() == 0
    assert h.pool.functions.totalImpairment().call() == 0
    # Realising the loss no longer moves the share price: the lender who left paid the same as the one who stays.
    after = _share_price(h)
    assert after >= impaired - 10**6 // 100  # within a hundredth of a cent per million shares
    assert leaver_price <= after + 10**6 // 100
    assert h.pool.functions.balanceOf(stayer.address).call() > 0


def test_impairment_follows_prices_and_repayments_and_markdefault_impairs(h: Harness) -> None:
    loan_id, _ = h.open_loan(BORROWER, principal=2_000 * USDC, originationFee=0, rateBps=h.min_rate(2_000 * USDC))
    traditional, _ = h.open_loan(BORROWER, pool=False)
    assert h.revert_of(h.aggregator.functions.impair(traditional), OTHER).name == "NotPoolLoan"
    h.send(h.aggregator.functions.impair(loan_id), OTHER)  # covered: nothing to recognise
    assert h.pool.functions.impairmentOf(loan_id).call() == 0
    h.set_weth_price(1_500)  # 1 WETH recovers 1,428.57
    h.send(h.aggregator.functions.impair(loan_id), OTHER)
    first = h.pool.functions.impairmentOf(loan_id).call()
    assert 571 * USDC < first < 572 * USDC
    h.send(h.aggregator.functions.repay(loan_id, 500 * USDC), BORROWER)  # lowers the loss by what it pays
    assert h.pool.functions.impairmentOf(loan_id).call() == first - 500 * USDC
    h.set_weth_price(3_000)
    h.send(h.aggregator.functions.impair(loan_id), OTHER)  # covered again: the impairment is lifted
    assert h.pool.functions.totalImpairment().call() == 0
    h.set_weth_price(1_000)
    h.advance(38 * 86_400)
    h.send(h.aggregator.functions.markDefault(loan_id), OPERATOR)
    principal, interest = h.aggregator.functions.amountOwed(loan_id).call()
    expected = principal + interest - 1_000 * USDC * 10_000 // 10_500
    assert abs(h.pool.functions.impairmentOf(loan_id).call() - expected) <= 1


# ---------------------------------------------------------------------- M-2 and L-1: fees over time, term cap


def test_origination_fee_vests_over_the_term_and_cannot_be_sniped(h: Harness) -> None:
    # The review's scenario: a just-in-time deposit of 18M around a 100k / 1% loan took 900 of the 1,000 fee.
    searcher = LIQUIDATOR
    h.fund(searcher.address, usdc=18_000_000 * USDC)
    h.fund(BORROWER.address, weth=50 * WETH)
    h.send(h.pool.functions.deposit(18_000_000 * USDC, searcher.address), searcher)
    before = h.pool.functions.totalAssets().call()
    h.open_loan(
        BORROWER,
        principal=100_000 * USDC,
        originationFee=1_000 * USDC,
        collateralAmount=50 * WETH,
        rateBps=h.min_rate(100_000 * USDC),
    )
    assert h.pool.functions.totalAssets().call() == before  # the fee is in the pool's cash but not yet earned
    assert h.pool.functions.unvestedFees().call() == 1_000 * USDC
    shares = h.pool.functions.balanceOf(searcher.address).call()
    receipt = h.send(h.pool.functions.redeem(shares, searcher.address, searcher.address), searcher)
    (withdrawn,) = h.pool.events.Withdraw().process_receipt(receipt, errors=DISCARD)
    assert withdrawn["args"]["assets"] - 18_000_000 * USDC < USDC  # a second of interest, none of the fee
    h.advance(15 * 86_400)
    assert abs(h.pool.functions.unvestedFees().call() - 500 * USDC) <= USDC // 100
    h.advance(15 * 86_400)
    assert h.pool.functions.unvestedFees().call() == 0


def test_pool_lends_only_up_to_its_maximum_term(h: Harness) -> None:
    assert h.pool.functions.maxTermSeconds().call() == 365 * 86_400
    offer = h.offer(BORROWER.address, term=366 * 86_400)
    error = h.revert_of(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key)), RELAYER)
    assert (error.name, error.args) == ("TermAboveMaximum", (366 * 86_400, 365 * 86_400))
    h.govern(h.pool, "setMaxTerm", 400 * 86_400)
    h.send(
        h.aggregator.functions.openLoan(*h.open_args(h.offer(BORROWER.address, term=366 * 86_400), BORROWER.key)),
        RELAYER,
    )
    h.impersonate(h.timelock.address)
    assert h.revert_of(h.pool.functions.setMaxTerm(0), h.timelock.address).name == "InvalidMaxTerm"


# ---------------------------------------------------------------------- the Lows


def test_liquidator_pays_before_the_books_are_settled(h: Harness) -> None:
    loan_id, _ = h.open_loan(BORROWER, principal=2_000 * USDC, originationFee=0, rateBps=h.min_rate(2_000 * USDC))
    h.set_weth_price(2_200)
    receipt = h.send(h.manager.functions.liquidate(loan_id, 10_000 * USDC), LIQUIDATOR)
    transfer_topic = keccak(text="Transfer(address,address,uint256)")
    payment = next(
        log["logIndex"]
        for log in receipt["logs"]
        if log["address"] == h.usdc.address and log["topics"][0] == transfer_topic
    )
    (booked,) = h.pool.events.LoanRepaymentReceived().process_receipt(receipt, errors=DISCARD)
    assert payment < booked["logIndex"]


def test_frozen_collateral_takes_no_new_loans_but_keeps_its_positions(h: Harness) -> None:
    loan_id, _ = h.open_loan(BORROWER)
    assert h.revert_of(h.manager.functions.freezeCollateral(h.weth.address), OTHER).name == (
        "AccessControlUnauthorizedAccount"
    )
    h.send(h.manager.functions.freezeCollateral(h.weth.address), GUARDIAN)
    error = h.revert_of(h.aggregator.functions.openLoan(*h.open_args(h.offer(BORROWER.address), BORROWER.key)), RELAYER)
    assert (error.name, error.args) == ("CollateralFrozen", (h.weth.address,))
    h.send(h.manager.functions.addCollateral(loan_id, WETH), BORROWER)
    h.send(h.manager.functions.withdrawCollateral(loan_id, WETH // 2, BORROWER.address), BORROWER)
    assert h.manager.functions.healthFactor(loan_id).call() > 10**18  # no threshold change, nobody liquidatable
    assert h.revert_of(h.manager.functions.unfreezeCollateral(h.weth.address), GUARDIAN).name == (
        "AccessControlUnauthorizedAccount"
    )
    # Disabling an asset still in use is refused, and the bonus is always validated.
    h.impersonate(h.timelock.address)
    cap = h.manager.functions.collateralConfig(h.weth.address).call()[3]
    error = h.revert_of(h.manager.functions.setCollateralParameters(h.weth.address, 0, 0, 0, cap), h.timelock.address)
    assert error.name == "CollateralInUse"
    error = h.revert_of(h.manager.functions.setCollateralParameters(h.usdc.address, 0, 0, 5_000, 0), h.timelock.address)
    assert error.name == "InvalidCollateralParameters"
    h.send(h.manager.functions.unfreezeCollateral(h.weth.address), h.timelock.address)
    h.open_loan(BORROWER)


def test_top_ups_are_exempt_from_the_supply_cap(h: Harness) -> None:
    loan_id, _ = h.open_loan(BORROWER)
    held = h.manager.functions.collateralConfig(h.weth.address).call()[4]
    h.impersonate(h.timelock.address)
    h.send(h.manager.functions.setCollateralParameters(h.weth.address, 8_000, 8_250, 500, held), h.timelock.address)
    error = h.revert_of(h.aggregator.functions.openLoan(*h.open_args(h.offer(BORROWER.address), BORROWER.key)), RELAYER)
    assert error.name == "SupplyCapExceeded"
    h.send(h.manager.functions.addCollateral(loan_id, WETH), OTHER)  # defending a position is never capped
    assert h.manager.functions.collateralOf(loan_id).call()[1] == 2 * WETH


def test_a_borrower_the_token_blocks_can_still_close_and_claim_later(h: Harness) -> None:
    # A collateral token with a blocklist (as USDC's), listed through governance like any collateral.
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
    loan_id, _ = h.open_loan(BORROWER, collateralAsset=token.address)

    h.send(token.functions.setBlocked(BORROWER.address, True), DEPLOYER)
    assert h.revert_of(h.manager.functions.claimCollateral(loan_id), OTHER).name == "LoanNotClosed"
    receipt = h.send(h.aggregator.functions.close(loan_id), BORROWER)
    (claimable,) = h.manager.events.CollateralClaimable().process_receipt(receipt, errors=DISCARD)
    assert (claimable["args"]["borrower"], claimable["args"]["amount"]) == (BORROWER.address, WETH)
    assert h.loan(loan_id)["status"] == REPAID
    assert h.revert_of(h.manager.functions.claimCollateral(loan_id), OTHER).name == "AccountBlocked"
    h.send(token.functions.setBlocked(BORROWER.address, False), DEPLOYER)
    h.send(h.manager.functions.claimCollateral(loan_id), OTHER)  # anyone may; the borrower is paid
    assert token.functions.balanceOf(BORROWER.address).call() == WETH
    assert h.revert_of(h.manager.functions.claimCollateral(loan_id), OTHER).name == "NothingToClaim"


def test_the_l2_devnet_prices_only_while_its_sequencer_is_up(devnet_chains: dict[str, DeployedChain]) -> None:
    chain = devnet_chains["arbitrum-local"]
    with chain.snapshot():
        h = Harness(chain)
        sequencer = chain.contract("SequencerFeed")
        assert h.manager.functions.sequencerFeed().call() == sequencer.address
        assert h.manager.functions.sequencerGracePeriod().call() == 3_600
        h.approve_all(BORROWER.address)
        loan_id, _ = h.open_loan(BORROWER)  # up since long before the grace period: prices are read
        h.send(sequencer.functions.setAnswer(1), DEPLOYER)  # down
        assert h.revert_of(h.manager.functions.healthFactor(loan_id), BORROWER).name == "SequencerDown"
        h.send(sequencer.functions.setAnswer(0), DEPLOYER)
        h.send(sequencer.functions.setTimes(h.now(), 0), DEPLOYER)  # back up just now: still in the grace period
        error = h.revert_of(h.manager.functions.healthFactor(loan_id), BORROWER)
        assert error.name == "SequencerGracePeriodNotOver"


def test_production_pools_defeat_first_depositor_donation_griefing(h: Harness) -> None:
    # A pool as production deploys it: shares carry 6 more decimals than the asset (OZ ERC-4626 virtual shares).
    artifact = load_artifact("LendingPool")
    factory = h.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    args = (h.usdc.address, "p", "cmP", DEPLOYER.address, h.aggregator.address, 200, 800, 6_000, 8_000, 1_000)
    receipt = h.w3.eth.wait_for_transaction_receipt(factory.constructor(*args, 6).transact({"from": DEPLOYER.address}))
    pool = h.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)
    assert pool.functions.decimals().call() == 12
    attacker, victim = OTHER, LIQUIDATOR
    for account in (attacker, victim):
        h.fund(account.address, usdc=10_000 * USDC)
        h.send(h.usdc.functions.approve(pool.address, 2**256 - 1), account)
    h.send(pool.functions.deposit(1, attacker.address), attacker)  # one base unit first
    h.send(h.usdc.functions.transfer(pool.address, 10_000 * USDC), attacker)  # then a donation
    h.send(pool.functions.deposit(10_000 * USDC, victim.address), victim)
    shares = pool.functions.balanceOf(victim.address).call()
    assert pool.functions.previewRedeem(shares).call() >= 10_000 * USDC * 9_999 // 10_000  # lost < 0.01%


# ------------------------------------------------- governance review: a reserve factor change is not retroactive


@pytest.mark.parametrize("new_factor", [0, 5_000])
def test_a_reserve_factor_change_leaves_the_interest_accrued_before_it_split_as_it_was(
    h: Harness, new_factor: int
) -> None:
    """Interest is shared at the factor in force while it accrued. Before, the new factor applied to all interest
    accrued and not yet paid: lowering it stepped the share price up at once (anyone could deposit, execute the
    change and withdraw in one transaction), raising it took part of the lenders' past yield."""
    pool = h.pool
    old_factor = pool.functions.reserveFactorBps().call()
    assert old_factor not in (0, new_factor)
    h.fund(BORROWER.address, usdc=10_000 * USDC, weth=40 * WETH)
    terms: dict[str, Any] = {
        "principal": 50_000 * USDC,
        "collateralAmount": 40 * WETH,
        "rateBps": 2_000,
        "term": 300 * 86_400,
    }
    loan_id, _ = h.open_loan(BORROWER, originationFee=0, **terms)
    h.advance(180 * 86_400)
    h.govern(pool, "setReserveFactor", new_factor)  # read below at the change's own block: nothing accrued since

    accrued = pool.functions.expectedInterest().call()
    cash, borrowed = pool.functions.availableLiquidity().call(), pool.functions.totalBorrowed().call()
    lenders_share = accrued - -(-accrued * old_factor // 10_000)  # the old factor's split, as before the change
    assert pool.functions.totalAssets().call() == cash + borrowed + lenders_share
    adjustment = pool.functions.reserveShareAdjustment().call()
    assert adjustment == -(-accrued * old_factor // 10_000) - -(-accrued * new_factor // 10_000)

    h.advance(30 * 86_400)
    reserves = pool.functions.reserves().call()
    receipt = h.send(h.aggregator.functions.close(loan_id), BORROWER)
    (repaid,) = h.aggregator.events.LoanRepaid().process_receipt(receipt, errors=DISCARD)
    paid = repaid["args"]["interestPaid"]
    # the reserves take the old factor's share of what accrued before the change, the new one's of the rest
    assert pool.functions.reserves().call() - reserves == -(-paid * new_factor // 10_000) + adjustment
    assert pool.functions.reserveShareAdjustment().call() == 0


def test_a_reserve_share_kept_from_an_old_factor_goes_with_interest_written_off(h: Harness) -> None:
    """Interest accrued under the old factor, then the loan liquidated at a loss: the part of the adjustment for the
    interest paid goes to the reserves, the rest is dropped with the interest lost, and nothing of it is left to
    count against the lenders once no interest is outstanding."""
    pool = h.pool
    loan_id, _ = h.open_loan(BORROWER, principal=2_000 * USDC, originationFee=0, rateBps=2_000)
    h.advance(200 * 86_400)
    h.govern(pool, "setReserveFactor", 0)
    kept = pool.functions.reserveShareAdjustment().call()
    assert kept > 0
    reserves = pool.functions.reserves().call()

    h.set_weth_price(100)  # 1 WETH of collateral against ~2,200 USDC owed: liquidated at a loss
    h.send(h.aggregator.functions.markDefault(loan_id), OPERATOR)
    receipt = h.send(h.manager.functions.liquidate(loan_id, 10_000 * USDC), LIQUIDATOR)
    (written_off,) = h.aggregator.events.LoanWrittenOff().process_receipt(receipt, errors=DISCARD)
    assert written_off["args"]["interest"] > 0, "some of the interest was lost"

    assert pool.functions.reserveShareAdjustment().call() == 0
    assert 0 < pool.functions.reserves().call() - reserves < kept, "the paid interest's part only"
    assert pool.functions.totalBorrowed().call() == 0
    # The impairment (the whole debt's shortfall) was more than the lenders lost, their share of the interest only:
    # the difference vests, as any fall in an impairment does, then nothing is left.
    reversal = pool.functions.unvestedImpairmentReversals().call()
    assert pool.functions.totalAssets().call() + reversal == pool.functions.availableLiquidity().call()
    h.advance(pool.functions.IMPAIRMENT_REVERSAL_VESTING().call())
    assert pool.functions.totalAssets().call() == pool.functions.availableLiquidity().call()
