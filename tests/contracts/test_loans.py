"""Per operation on the devnet contract set: the happy path and the revert paths, asserting custom errors and
their arguments."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from web3.logs import DISCARD

from chain.artifacts import load_artifact
from contracts.typed_data import Domain
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
    Read,
    Reverted,
    simple_interest_up,
)
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.contracts

BORROWER = BORROWERS[0]
OTHER = BORROWERS[1]
LIQUIDATOR = BORROWERS[3]
ACTIVE, REPAID, DEFAULTED, LIQUIDATED = 1, 2, 3, 4


@pytest.fixture
def h(ethereum_local: DeployedChain) -> Harness:
    harness = Harness(ethereum_local)
    for account in (BORROWER, OTHER, LIQUIDATOR):
        harness.approve_all(account.address)
    harness.fund(LIQUIDATOR.address, usdc=100_000 * USDC)
    return harness


# ---------------------------------------------------------------------- openLoan


def test_open_pool_loan_records_the_terms(h: Harness) -> None:
    weth_before = h.weth.functions.balanceOf(BORROWER.address).call()
    usdc_before = h.usdc.functions.balanceOf(BORROWER.address).call()
    loan_id, receipt = h.open_loan(BORROWER)
    loan = h.loan(loan_id)
    assert (loan["borrower"], loan["pool"], loan["asset"]) == (BORROWER.address, h.pool.address, h.usdc.address)
    assert loan["status"] == ACTIVE
    assert (loan["collateralAsset"], loan["collateralAmount"]) == (h.weth.address, WETH)
    assert (loan["outstandingPrincipal"], loan["accruedInterest"]) == (1_500 * USDC, 0)
    assert loan["maturity"] == loan["lastAccrual"] + 30 * 86_400
    opened = h.aggregator.events.LoanOpened().process_receipt(receipt, errors=DISCARD)[0]["args"]
    assert (opened["principal"], opened["originationFee"], opened["loanId"]) == (1_500 * USDC, 15 * USDC, loan_id)
    assert h.usdc.functions.balanceOf(BORROWER.address).call() == usdc_before + 1_485 * USDC
    assert h.weth.functions.balanceOf(BORROWER.address).call() == weth_before - WETH
    assert h.manager.functions.collateralOf(loan_id).call() == [h.weth.address, WETH]
    assert h.pool.functions.totalBorrowed().call() == 1_500 * USDC


def test_reads_encoded_once_and_sent_in_one_batch_give_what_web3_calls_give(h: Harness) -> None:
    """The property run's invariants read through ``Read`` and ``read_latest``: the values must be web3's."""
    loan_id, _ = h.open_loan(BORROWER)
    calls: list[tuple[Any, str, tuple[Any, ...]]] = [
        (h.manager, "collateralOf", (loan_id,)),
        (h.aggregator, "amountOwed", (loan_id,)),
        (h.manager, "collateralConfig", (h.weth.address,)),
        (h.pool, "totalBorrowed", ()),
        (h.usdc, "balanceOf", (BORROWER.address,)),
    ]
    now, values = h.read_latest([Read.of(contract, name, *args) for contract, name, args in calls])
    assert now == h.now()
    expected = [contract.get_function_by_name(name)(*args).call() for contract, name, args in calls]
    assert [_plain(value) for value in values] == [_plain(value) for value in expected]
    assert values[3] == 1_500 * USDC


def _plain(value: Any) -> Any:
    """Sequences as tuples and addresses in lower case: how web3 and ``read_latest`` may differ."""
    if isinstance(value, list | tuple):
        return tuple(_plain(item) for item in value)
    return value.lower() if isinstance(value, str) else value


def test_open_loan_with_permit_needs_no_prior_approval(h: Harness) -> None:
    borrower = BORROWERS[2]
    offer = h.offer(borrower.address)
    domain = {
        "name": "Devnet Wrapped Ether",
        "version": "1",
        "chainId": h.chain.chain_id,
        "verifyingContract": h.weth.address,
    }
    permit_types = [
        {"name": "owner", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]
    message = {
        "owner": borrower.address,
        "spender": h.aggregator.address,
        "value": WETH,
        "nonce": h.weth.functions.nonces(borrower.address).call(),
        "deadline": offer.expiry,
    }
    signed = Account.sign_message(encode_typed_data(domain, {"Permit": permit_types}, message), borrower.key)
    permit = (WETH, offer.expiry, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))
    args = h.open_args(offer, borrower.key)
    h.send(h.aggregator.functions.openLoanWithPermit(*args, permit), RELAYER)
    assert h.weth.functions.balanceOf(h.manager.address).call() == WETH


def test_smart_wallet_borrower_accepts_through_erc1271(h: Harness) -> None:
    artifact = load_artifact("MockSmartWallet")
    factory = h.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = h.w3.eth.wait_for_transaction_receipt(
        factory.constructor(OTHER.address).transact({"from": OTHER.address})
    )
    wallet = h.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)
    h.fund(wallet.address, weth=2 * WETH)
    h.send(wallet.functions.approve(h.weth.address, h.aggregator.address, 2 * WETH), OTHER)
    offer = h.offer(wallet.address)
    h.send(h.aggregator.functions.openLoan(*h.open_args(offer, OTHER.key)), RELAYER)
    other_offer = h.offer(wallet.address)
    error = h.revert_of(h.aggregator.functions.openLoan(*h.open_args(other_offer, BORROWER.key)), RELAYER)
    assert (error.name, error.args) == ("InvalidAcceptanceSignature", (wallet.address,))


def _bad_open(h: Harness, case: str) -> tuple[str, tuple[object, ...] | None]:
    now = h.now()
    offer = h.offer(BORROWER.address)
    kwargs: dict[str, object] = {}
    expected_args: tuple[object, ...] | None = None
    if case == "OfferExpired":
        offer = dataclasses.replace(offer, expiry=now - 1)
        kwargs["deadline"] = now + 100
    elif case == "AcceptanceExpired":
        kwargs["deadline"] = now - 1
    elif case == "InvalidOfferSigner":
        kwargs["quote_key"] = BORROWER.key
    elif case == "WrongChain":
        offer = dataclasses.replace(offer, chainId=31338)
        expected_args = (31338, h.chain.chain_id)
    elif case == "InvalidAttestationSigner":
        kwargs["risk_key"] = QUOTE_SIGNER.key
    elif case == "AttestationExpired":
        kwargs["attestation"] = h.attestation(offer, expiry=now - 1)
    elif case == "AttestationBorrowerMismatch":
        kwargs["attestation"] = h.attestation(offer, borrower=OTHER.address)
        expected_args = (OTHER.address, BORROWER.address)
    elif case == "LtvAboveAttestation":
        kwargs["attestation"] = h.attestation(offer, maxLtvBps=4_000)
        expected_args = (5_000, 4_000)
    elif case == "LtvAboveCollateralLimit":
        offer = dataclasses.replace(offer, principal=2_550 * USDC)
        kwargs["attestation"] = h.attestation(offer, maxLtvBps=9_000)
        expected_args = (8_500, 8_000)
    elif case == "UnsupportedCollateral":
        offer = dataclasses.replace(offer, collateralAsset=h.usdc.address, collateralAmount=3_000 * USDC)
        expected_args = (h.usdc.address,)
    elif case == "InsufficientLiquidity":
        offer = dataclasses.replace(offer, principal=3_000_000 * USDC, collateralAmount=10_000 * WETH, rateBps=9_000)
        h.fund(BORROWER.address, weth=10_000 * WETH)
    elif case == "RateBelowPoolModel":
        offer = dataclasses.replace(offer, rateBps=1)
        expected_args = (1, h.min_rate(offer.principal))
    elif case == "InvalidOffer":
        offer = dataclasses.replace(offer, originationFee=offer.principal)
        expected_args = ("fee not below principal",)
    elif case == "AssetMismatch":
        offer = dataclasses.replace(offer, asset=h.weth.address)
        expected_args = (h.usdc.address, h.weth.address)
    elif case == "StalePrice":
        h.send(h.weth_feed.functions.setTimes(now - 7_200, now - 7_200), DEPLOYER)
    error = h.revert_of(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key, **kwargs)), RELAYER)  # type: ignore[arg-type]
    return error.name, (error.args if expected_args is None else expected_args) if error.args else None


@pytest.mark.parametrize(
    "case",
    [
        "OfferExpired",
        "AcceptanceExpired",
        "InvalidOfferSigner",
        "WrongChain",
        "InvalidAttestationSigner",
        "AttestationExpired",
        "AttestationBorrowerMismatch",
        "LtvAboveAttestation",
        "LtvAboveCollateralLimit",
        "UnsupportedCollateral",
        "InsufficientLiquidity",
        "RateBelowPoolModel",
        "InvalidOffer",
        "AssetMismatch",
        "StalePrice",
    ],
)
def test_open_loan_refusals(h: Harness, case: str) -> None:
    offer = h.offer(BORROWER.address)
    name, _ = _bad_open(h, case)
    assert name == case
    assert not h.aggregator.functions.nonceUsed(QUOTE_SIGNER.address, offer.nonce).call()


def test_open_loan_refusal_arguments(h: Harness) -> None:
    offer = h.offer(BORROWER.address, chainId=31338)
    error = h.revert_of(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key)), RELAYER)
    assert error.args == (31338, h.chain.chain_id)
    offer = h.offer(BORROWER.address)
    error = h.revert_of(
        h.aggregator.functions.openLoan(
            *h.open_args(offer, BORROWER.key, attestation=h.attestation(offer, maxLtvBps=4_000))
        ),
        RELAYER,
    )
    assert error.args == (5_000, 4_000)  # 1,500 USDC against 1 WETH at 3,000 USD
    offer = h.offer(BORROWER.address, rateBps=1)
    error = h.revert_of(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key)), RELAYER)
    assert error.args == (1, h.min_rate(offer.principal))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"rateBps": 100_001}, "rate too high"),
        ({"principal": 2**96, "collateralAmount": 10**6 * WETH}, "principal too large"),
        ({"term": 0}, "term is zero"),
        ({"collateralAmount": 0}, "collateral is zero"),
    ],
)
def test_offer_terms_out_of_bounds_are_refused(h: Harness, changes: dict[str, Any], reason: str) -> None:
    offer = dataclasses.replace(h.offer(BORROWER.address), **changes)
    error = h.revert_of(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key)), RELAYER)
    assert (error.name, error.args) == ("InvalidOffer", (reason,))


def test_offer_nonce_is_single_use_per_quote_signer(h: Harness) -> None:
    offer = h.offer(BORROWER.address)
    h.send(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key)), RELAYER)
    assert h.aggregator.functions.nonceUsed(QUOTE_SIGNER.address, offer.nonce).call()
    assert not h.aggregator.functions.nonceUsed(QUOTE_SIGNER.address, offer.nonce + 1).call()
    # Other terms under the same nonce are the same offer slot: refused, with the new offer's digest.
    again = dataclasses.replace(offer, principal=offer.principal - USDC)
    error = h.revert_of(h.aggregator.functions.openLoan(*h.open_args(again, BORROWER.key)), RELAYER)
    digest = h.aggregator.functions.offerDigest(again.as_abi_tuple()).call()
    assert (error.name, error.args) == ("OfferAlreadyUsed", (digest,))
    # The neighbouring nonce in the same bitmap word, and the same nonce from another quote signer, are free.
    neighbour = dataclasses.replace(again, nonce=offer.nonce + 1)
    h.send(h.aggregator.functions.openLoan(*h.open_args(neighbour, BORROWER.key)), RELAYER)
    h.govern(h.aggregator, "grantRole", keccak(text="QUOTE_SIGNER_ROLE"), OTHER.address)
    h.send(h.aggregator.functions.openLoan(*h.open_args(again, BORROWER.key, quote_key=OTHER.key)), RELAYER)
    assert h.aggregator.functions.nonceUsed(OTHER.address, offer.nonce).call()


def test_offers_draw_only_from_registered_pools(h: Harness) -> None:
    assert h.aggregator.functions.poolId(h.pool.address).call() == 1
    artifact = load_artifact("LendingPool")
    factory = h.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    model = (200, 800, 6_000, 8_000, 1_000, 0)  # rate model, reserve factor, shares decimals offset
    args = (h.usdc.address, "other", "cmO", DEPLOYER.address, h.aggregator.address, *model)
    receipt = h.w3.eth.wait_for_transaction_receipt(factory.constructor(*args).transact({"from": DEPLOYER.address}))
    other = h.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)
    offer = dataclasses.replace(h.offer(BORROWER.address), pool=other.address)
    error = h.revert_of(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key)), RELAYER)
    assert (error.name, error.args) == ("UnknownPool", (other.address,))
    error = h.revert_of(h.aggregator.functions.registerPool(other.address), DEPLOYER)
    assert error.name == "AccessControlUnauthorizedAccount"
    h.govern(h.aggregator, "registerPool", other.address)
    assert h.aggregator.functions.poolId(other.address).call() == 2
    assert h.aggregator.functions.poolCount().call() == 2


def test_register_pool_refusals(h: Harness) -> None:
    h.impersonate(h.timelock.address)
    for pool, expected in (
        (h.pool.address, "PoolAlreadyRegistered"),
        (h.oracle.address, "InvalidPool"),  # a contract that is not a LendingPool
        (OTHER.address, "InvalidPool"),  # an account without code
    ):
        error = h.revert_of(h.aggregator.functions.registerPool(pool), h.timelock.address)
        assert (error.name, error.args) == (expected, (pool,))


def test_offer_signed_for_another_aggregator_is_refused(h: Harness) -> None:
    offer = h.offer(BORROWER.address)
    foreign = Domain(h.chain.chain_id, h.pool.address)
    error = h.revert_of(
        h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key, aggregator_domain=foreign)), RELAYER
    )
    assert error.name == "InvalidOfferSigner"


# ---------------------------------------------------------------------- repaying


def test_partial_then_full_repayment_to_the_wei(h: Harness) -> None:
    loan_id, receipt = h.open_loan(BORROWER)
    start = h.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    h.advance(10 * 86_400)
    receipt = h.send(h.aggregator.functions.repay(loan_id, 500 * USDC), BORROWER)
    at = h.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    interest = simple_interest_up(1_500 * USDC, 900, at - start)
    (event,) = h.aggregator.events.LoanRepaid().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["interestPaid"] == interest
    assert event["args"]["principalPaid"] == 500 * USDC - interest
    outstanding = 1_500 * USDC - (500 * USDC - interest)
    assert event["args"]["outstandingPrincipal"] == outstanding
    h.advance(5 * 86_400)
    weth_before = h.weth.functions.balanceOf(BORROWER.address).call()
    receipt = h.send(h.aggregator.functions.close(loan_id), BORROWER)
    later = h.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    (event,) = h.aggregator.events.LoanRepaid().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["interestPaid"] == simple_interest_up(outstanding, 900, later - at)
    assert event["args"]["principalPaid"] == outstanding
    assert h.loan(loan_id)["status"] == REPAID
    assert h.weth.functions.balanceOf(BORROWER.address).call() == weth_before + WETH
    assert h.pool.functions.totalBorrowed().call() == 0
    assert h.revert_of(h.aggregator.functions.repay(loan_id, 1), BORROWER).name == "LoanNotActive"


def test_repay_refusals(h: Harness) -> None:
    loan_id, _ = h.open_loan(BORROWER)
    assert h.revert_of(h.aggregator.functions.repay(loan_id, 0), BORROWER).name == "ZeroAmount"
    assert h.revert_of(h.aggregator.functions.repay(99, 1), BORROWER).args == (99,)
    traditional, _ = h.open_loan(BORROWER, pool=False)
    assert h.revert_of(h.aggregator.functions.repay(traditional, 1), BORROWER).name == "NotPoolLoan"


def test_operator_records_offchain_repayments_and_marks_defaults(h: Harness) -> None:
    loan_id, _ = h.open_loan(BORROWER, pool=False)
    error = h.revert_of(h.aggregator.functions.recordOffchainRepayment(loan_id, 1, keccak(text="p")), BORROWER)
    assert error.name == "AccessControlUnauthorizedAccount"
    receipt = h.send(h.aggregator.functions.recordOffchainRepayment(loan_id, 100 * USDC, keccak(text="p1")), OPERATOR)
    (event,) = h.aggregator.events.LoanRepaid().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["paymentRef"] == keccak(text="p1")
    pool_loan, _ = h.open_loan(BORROWER)
    assert (
        h.revert_of(h.aggregator.functions.recordOffchainRepayment(pool_loan, 1, b"\x00" * 32), OPERATOR).name
        == "NotTraditionalLoan"
    )
    maturity = h.loan(loan_id)["maturity"]
    error = h.revert_of(h.aggregator.functions.markDefault(loan_id), OPERATOR)
    assert (error.name, error.args) == ("NotYetDefaultable", (loan_id, maturity + 7 * 86_400))
    h.advance(38 * 86_400)
    h.send(h.aggregator.functions.markDefault(loan_id), OPERATOR)
    h.send(h.aggregator.functions.markDefault(pool_loan), OPERATOR)
    assert h.loan(loan_id)["status"] == DEFAULTED
    assert h.pool.functions.issuanceRate().call() == 0


# ---------------------------------------------------------------------- collateral


def test_add_and_withdraw_collateral(h: Harness) -> None:
    # An attested limit above the asset's: the asset's LTV (80%) is the lower cap here.
    loan_id, _ = h.open_loan(BORROWER, attestation={"maxLtvBps": 9_000})
    h.send(h.manager.functions.addCollateral(loan_id, WETH), OTHER)
    assert h.manager.functions.collateralOf(loan_id).call()[1] == 2 * WETH
    error = h.revert_of(h.manager.functions.withdrawCollateral(loan_id, WETH, OTHER.address), OTHER)
    assert (error.name, error.args) == ("NotBorrower", (OTHER.address, BORROWER.address))
    error = h.revert_of(h.manager.functions.withdrawCollateral(loan_id, 2 * WETH, BORROWER.address), BORROWER)
    assert error.name == "InsufficientCollateral"
    error = h.revert_of(h.manager.functions.withdrawCollateral(loan_id, 14 * WETH // 10, BORROWER.address), BORROWER)
    assert error.name == "LtvAboveCollateralLimit"
    h.send(h.manager.functions.withdrawCollateral(loan_id, WETH, BORROWER.address), BORROWER)
    assert h.manager.functions.collateralOf(loan_id).call()[1] == WETH
    assert h.revert_of(h.manager.functions.addCollateral(999, WETH), OTHER).name == "LoanNotActive"


# ---------------------------------------------------------------------- liquidation


def _risky_loan(h: Harness) -> int:
    loan_id, _ = h.open_loan(
        BORROWER, principal=2_000 * USDC, originationFee=0, rateBps=max(900, h.min_rate(2_000 * USDC))
    )
    return loan_id


def test_healthy_loan_cannot_be_liquidated(h: Harness) -> None:
    loan_id = _risky_loan(h)
    error = h.revert_of(h.manager.functions.liquidate(loan_id, 100 * USDC), LIQUIDATOR)
    assert error.name == "HealthyPosition"
    assert error.args[0] == 3_000 * 8_250 * 10**18 // (2_000 * 10_000)


def test_partial_liquidation_is_capped_at_half_the_debt(h: Harness) -> None:
    loan_id = _risky_loan(h)
    h.set_weth_price(2_400)  # health factor 0.99
    debt = sum(h.aggregator.functions.amountOwed(loan_id).call())
    receipt = h.send(h.manager.functions.liquidate(loan_id, 5_000 * USDC), LIQUIDATOR)
    (event,) = h.manager.events.LoanLiquidated().process_receipt(receipt, errors=DISCARD)
    repaid, seized = event["args"]["debtRepaid"], event["args"]["collateralSeized"]
    assert debt // 2 <= repaid <= (debt + 2 * USDC // 1_000) // 2 + 1
    base = repaid * 10**8 * WETH // (2_400 * 10**8 * USDC)  # collateral worth the debt, rounded down
    assert seized == base * 10_500 // 10_000
    assert h.loan(loan_id)["status"] == ACTIVE


def test_full_liquidation_below_095_returns_the_rest(h: Harness) -> None:
    loan_id = _risky_loan(h)
    h.set_weth_price(2_200)  # health factor 0.9075
    weth_before = h.weth.functions.balanceOf(BORROWER.address).call()
    h.send(h.manager.functions.liquidate(loan_id, 10_000 * USDC), LIQUIDATOR)
    assert h.loan(loan_id)["status"] == LIQUIDATED
    assert h.manager.functions.collateralOf(loan_id).call()[1] == 0
    assert h.weth.functions.balanceOf(BORROWER.address).call() > weth_before


def test_partial_liquidation_must_not_leave_dust(h: Harness) -> None:
    loan_id = _risky_loan(h)
    h.set_weth_price(2_200)
    error = h.revert_of(h.manager.functions.liquidate(loan_id, 1_500 * USDC), LIQUIDATOR)
    assert error.name == "MustNotLeaveDust"
    assert error.args[0] < 1_000 * 10**8


def test_bad_debt_is_written_off_when_collateral_runs_out(h: Harness) -> None:
    loan_id = _risky_loan(h)
    h.set_weth_price(1_500)
    receipt = h.send(h.manager.functions.liquidate(loan_id, 10_000 * USDC), LIQUIDATOR)
    (bad,) = h.manager.events.BadDebtRecorded().process_receipt(receipt, errors=DISCARD)
    (loss,) = h.pool.events.LossRealized().process_receipt(receipt, errors=DISCARD)
    assert bad["args"]["amount"] == loss["args"]["principalLost"] + loss["args"]["interestLost"] > 0
    assert h.loan(loan_id)["status"] == LIQUIDATED
    assert h.pool.functions.totalBorrowed().call() == 0


def test_defaulted_loan_is_liquidatable_regardless_of_health(h: Harness) -> None:
    loan_id = _risky_loan(h)
    h.advance(38 * 86_400)
    h.send(h.aggregator.functions.markDefault(loan_id), OPERATOR)
    h.send(h.manager.functions.liquidate(loan_id, 10_000 * USDC), LIQUIDATOR)
    assert h.loan(loan_id)["status"] == LIQUIDATED


def test_defaulted_offchain_loan_is_liquidated_to_its_providers_settlement_address(h: Harness) -> None:
    provider = keccak(text="a bank without a settlement address")  # the devnet profile gives the simulated lenders one
    loan_id, _ = h.open_loan(
        BORROWER, pool=False, providerId=provider, principal=2_000 * USDC, originationFee=0, rateBps=900
    )
    h.advance(38 * 86_400)
    h.send(h.aggregator.functions.markDefault(loan_id), OPERATOR)
    error = h.revert_of(h.manager.functions.liquidate(loan_id, 10_000 * USDC), LIQUIDATOR)
    assert (error.name, error.args) == ("NoSettlementAddress", (provider,))
    error = h.revert_of(h.aggregator.functions.setSettlementAddress(provider, OTHER.address), DEPLOYER)
    assert error.name == "AccessControlUnauthorizedAccount"
    h.govern(h.aggregator, "setSettlementAddress", provider, OTHER.address)
    assert h.aggregator.functions.settlementAddress(provider).call() == OTHER.address

    principal, interest = h.aggregator.functions.amountOwed(loan_id).call()
    bank_before = h.usdc.functions.balanceOf(OTHER.address).call()
    borrower_weth = h.weth.functions.balanceOf(BORROWER.address).call()
    pool_books = (h.pool.functions.totalBorrowed().call(), h.pool.functions.issuanceRate().call())
    receipt = h.send(h.manager.functions.liquidate(loan_id, 10_000 * USDC), LIQUIDATOR)
    (repaid,) = h.aggregator.events.LoanRepaid().process_receipt(receipt, errors=DISCARD)
    assert (repaid["args"]["payer"], repaid["args"]["interestPaid"], repaid["args"]["principalPaid"]) == (
        LIQUIDATOR.address,
        interest,
        principal,
    )
    # A defaulted loan is closed in full: the provider is paid everything owed, the rest of the collateral returns.
    assert h.usdc.functions.balanceOf(OTHER.address).call() == bank_before + principal + interest
    (liquidated,) = h.manager.events.LoanLiquidated().process_receipt(receipt, errors=DISCARD)
    returned = h.weth.functions.balanceOf(BORROWER.address).call() - borrower_weth
    assert returned + liquidated["args"]["collateralSeized"] == WETH
    assert h.loan(loan_id)["status"] == LIQUIDATED
    assert (h.pool.functions.totalBorrowed().call(), h.pool.functions.issuanceRate().call()) == pool_books


def test_sequencer_down_blocks_pricing(h: Harness) -> None:
    loan_id = _risky_loan(h)
    h.set_weth_price(2_200)
    h.govern(h.manager, "setSequencerFeed", h.weth_feed.address, 3_600)  # any feed answering non-zero is "down"
    assert h.revert_of(h.manager.functions.liquidate(loan_id, USDC), LIQUIDATOR).name == "SequencerDown"


# ---------------------------------------------------------------------- pause and governance


def test_pause_blocks_exactly_opening_withdrawing_and_borrowing(h: Harness) -> None:
    pool_loan, _ = h.open_loan(BORROWER)
    traditional, _ = h.open_loan(BORROWER, pool=False)
    h.send(h.manager.functions.addCollateral(pool_loan, WETH), BORROWER)
    for contract in (h.aggregator, h.manager, h.pool):
        h.send(contract.functions.pause(), GUARDIAN)
    h.send(h.manager.functions.pauseLiquidations(), GUARDIAN)
    offer = h.offer(BORROWER.address)
    assert (
        h.revert_of(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key)), RELAYER).name == "EnforcedPause"
    )
    assert (
        h.revert_of(h.manager.functions.withdrawCollateral(pool_loan, 1, BORROWER.address), BORROWER).name
        == "EnforcedPause"
    )
    assert h.revert_of(h.manager.functions.liquidate(pool_loan, 1), LIQUIDATOR).name == "LiquidationsPaused"
    # never blocked: repaying, operator-recorded repayments, adding collateral, lender deposits and withdrawals
    h.send(h.aggregator.functions.repay(pool_loan, 10 * USDC), BORROWER)
    h.send(h.aggregator.functions.recordOffchainRepayment(traditional, USDC, keccak(text="r")), OPERATOR)
    h.send(h.manager.functions.addCollateral(pool_loan, 1), BORROWER)
    h.send(h.pool.functions.deposit(100 * USDC, OTHER.address), OTHER)
    h.send(h.pool.functions.withdraw(50 * USDC, OTHER.address, OTHER.address), OTHER)
    h.advance(38 * 86_400)
    h.send(h.aggregator.functions.markDefault(traditional), OPERATOR)
    # the guardian cannot unpause; the timelock can
    error = h.revert_of(h.aggregator.functions.unpause(), GUARDIAN)
    assert error.name == "AccessControlUnauthorizedAccount"
    h.govern(h.aggregator, "unpause")
    assert not h.aggregator.functions.paused().call()


def test_pool_pause_blocks_new_pool_borrowing_only(h: Harness) -> None:
    h.send(h.pool.functions.pause(), GUARDIAN)
    offer = h.offer(BORROWER.address)
    assert (
        h.revert_of(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key)), RELAYER).name == "EnforcedPause"
    )
    h.open_loan(BORROWER, pool=False)


def test_deployer_renounced_and_only_the_timelock_changes_parameters(h: Harness) -> None:
    admin = b"\x00" * 32
    for contract in (h.aggregator, h.manager, h.pool, h.oracle):
        assert not contract.functions.hasRole(admin, DEPLOYER.address).call()
        assert contract.functions.hasRole(admin, h.timelock.address).call()
    error = h.revert_of(h.pool.functions.setReserveFactor(2_000), DEPLOYER)
    assert (error.name, error.args) == ("AccessControlUnauthorizedAccount", (DEPLOYER.address, admin))
    h.govern(h.pool, "setReserveFactor", 2_000)
    assert h.pool.functions.reserveFactorBps().call() == 2_000


def test_timelock_delay_holds(h: Harness) -> None:
    data = h.aggregator.encode_abi("setGracePeriod", [86_400])
    zero = b"\x00" * 32
    delay = h.timelock.functions.getMinDelay().call()
    h.send(h.timelock.functions.schedule(h.aggregator.address, 0, data, zero, zero, delay), DEPLOYER)
    with pytest.raises(Reverted):
        h.send(h.timelock.functions.execute(h.aggregator.address, 0, data, zero, zero), RELAYER)
    with pytest.raises(Reverted):
        h.send(h.timelock.functions.schedule(h.aggregator.address, 0, data, zero, keccak(text="x"), 0), DEPLOYER)
    h.advance(delay + 1)
    h.send(h.timelock.functions.execute(h.aggregator.address, 0, data, zero, zero), RELAYER)
    assert h.aggregator.functions.gracePeriod().call() == 86_400


def test_quote_signer_rotates_through_the_timelock(h: Harness) -> None:
    role = keccak(text="QUOTE_SIGNER_ROLE")
    new_signer = OTHER
    h.govern(h.aggregator, "grantRole", role, new_signer.address)
    h.govern(h.aggregator, "revokeRole", role, QUOTE_SIGNER.address)
    offer = h.offer(BORROWER.address)
    assert (
        h.revert_of(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key)), RELAYER).name
        == "InvalidOfferSigner"
    )
    h.send(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key, quote_key=new_signer.key)), RELAYER)
