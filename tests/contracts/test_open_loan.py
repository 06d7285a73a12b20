"""openLoan on a real devnet: the Python EIP-712 types agree with the contract, and the contract enforces them."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from chain.relay import REVERT_ARTIFACTS
from chain.revert import decode_revert
from chain.signers import Role, devnet_account, devnet_signer
from contracts.typed_data import (
    ZERO_ADDRESS,
    Acceptance,
    Domain,
    Offer,
    RiskAttestation,
    acceptance_typed_data,
    offer_typed_data,
    risk_attestation_typed_data,
    sign,
)
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.contracts

BORROWER: LocalAccount = devnet_account(6)
USDC = 10**6
WETH = 10**18


def _offer(chain: DeployedChain, pool: bool, **changes: Any) -> Offer:
    record = chain.record
    now = chain.w3.eth.get_block("latest")["timestamp"]
    offer = Offer(
        providerId=keccak(text="pool:usdc" if pool else "sim-bank"),
        pool=record.address("LendingPool:USDC") if pool else ZERO_ADDRESS,
        borrower=BORROWER.address,
        asset=record.address("USDC"),
        principal=1_500 * USDC,
        rateBps=900,
        term=30 * 86_400,
        originationFee=15 * USDC,
        collateralAsset=record.address("WETH"),
        collateralAmount=1 * WETH,
        chainId=chain.chain_id,
        termsHash=keccak(text="disclosure"),
        expiry=now + 600,
        nonce=int(time.time_ns()),
    )
    return dataclasses.replace(offer, **changes)


def _open_loan_args(chain: DeployedChain, offer: Offer, borrower_key: bytes | None = None) -> tuple[Any, ...]:
    aggregator = Domain(chain.chain_id, chain.record.address("CreditAggregator"))
    oracle = Domain(chain.chain_id, chain.record.address("CreditScoringOracle"))
    acceptance = Acceptance(offer=offer, deadline=offer.expiry)
    attestation = RiskAttestation(
        borrower=offer.borrower,
        grade=2,
        maxLtvBps=7_000,
        expiry=offer.expiry,
        decisionHash=keccak(text="d"),
        nonce=offer.nonce,
    )
    quote_key = devnet_account(2).key
    assert devnet_signer(Role.QUOTE_SIGNER).address == devnet_account(2).address
    return (
        acceptance.as_abi_tuple(),
        sign(offer_typed_data(aggregator, offer), quote_key),
        sign(acceptance_typed_data(aggregator, acceptance), borrower_key or BORROWER.key),
        attestation.as_abi_tuple(),
        sign(risk_attestation_typed_data(oracle, attestation), devnet_account(3).key),
    )


def _approve_collateral(chain: DeployedChain, amount: int) -> None:
    weth = chain.contract("WETH")
    tx = weth.functions.approve(chain.record.address("CreditAggregator"), amount).build_transaction(
        {"from": BORROWER.address, "nonce": chain.w3.eth.get_transaction_count(BORROWER.address)}
    )
    chain.w3.eth.send_raw_transaction(BORROWER.sign_transaction(dict(tx)).raw_transaction)  # type: ignore[arg-type]


def test_python_digest_equals_contract_digest(ethereum_local: DeployedChain) -> None:
    offer = _offer(ethereum_local, pool=True)
    aggregator = ethereum_local.contract("CreditAggregator")
    domain = Domain(ethereum_local.chain_id, aggregator.address)
    from contracts.typed_data import digest

    assert aggregator.functions.offerDigest(offer.as_abi_tuple()).call() == digest(offer_typed_data(domain, offer))
    acceptance = Acceptance(offer=offer, deadline=123)
    assert aggregator.functions.acceptanceDigest(acceptance.as_abi_tuple()).call() == digest(
        acceptance_typed_data(domain, acceptance)
    )


def test_pool_loan_moves_collateral_in_and_principal_out(ethereum_local: DeployedChain) -> None:
    chain = ethereum_local
    offer = _offer(chain, pool=True)
    usdc, weth, aggregator = chain.contract("USDC"), chain.contract("WETH"), chain.contract("CreditAggregator")
    _approve_collateral(chain, offer.collateralAmount)
    usdc_before = usdc.functions.balanceOf(BORROWER.address).call()
    weth_before = weth.functions.balanceOf(BORROWER.address).call()

    tx_hash = aggregator.functions.openLoan(*_open_loan_args(chain, offer)).transact(
        {"from": devnet_account(1).address}
    )
    receipt = chain.w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    (event,) = aggregator.events.LoanOpened().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["borrower"] == BORROWER.address
    assert event["args"]["principal"] == offer.principal
    assert event["args"]["rateBps"] == offer.rateBps
    assert event["args"]["pool"] == offer.pool
    assert usdc.functions.balanceOf(BORROWER.address).call() == usdc_before + offer.principal - offer.originationFee
    assert weth.functions.balanceOf(BORROWER.address).call() == weth_before - offer.collateralAmount
    assert weth.functions.balanceOf(chain.record.address("CollateralManager")).call() == offer.collateralAmount


def test_replayed_offer_is_refused(ethereum_local: DeployedChain) -> None:
    chain = ethereum_local
    offer = _offer(chain, pool=False)
    _approve_collateral(chain, 2 * offer.collateralAmount)
    aggregator = chain.contract("CreditAggregator")
    args = _open_loan_args(chain, offer)
    tx_hash = aggregator.functions.openLoan(*args).transact({"from": devnet_account(1).address})
    # anvil answers eth_sendTransaction before it has mined: on a loaded machine the replay could see the old state
    assert chain.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1
    with pytest.raises(ContractCustomError) as raised:
        aggregator.functions.openLoan(*args).call({"from": devnet_account(1).address})
    error = decode_revert(raised.value.data)
    assert error is not None
    assert error.name == "OfferAlreadyUsed"


@pytest.mark.parametrize(
    ("tamper", "expected_error"),
    [
        ("wrong-chain", "WrongChain"),
        ("expired", "OfferExpired"),
        ("other-borrower-signs", "InvalidAcceptanceSignature"),
        ("rate-below-model", "RateBelowPoolModel"),
    ],
)
def test_bad_offers_are_refused(ethereum_local: DeployedChain, tamper: str, expected_error: str) -> None:
    chain = ethereum_local
    _approve_collateral(chain, WETH)
    offer = _offer(chain, pool=True)
    borrower_key = None
    if tamper == "wrong-chain":
        offer = dataclasses.replace(offer, chainId=31338)
    elif tamper == "expired":
        offer = dataclasses.replace(offer, expiry=offer.expiry - 3_600)
    elif tamper == "other-borrower-signs":
        borrower_key = devnet_account(7).key
    elif tamper == "rate-below-model":
        offer = dataclasses.replace(offer, rateBps=1)
    aggregator = chain.contract("CreditAggregator")
    with pytest.raises(ContractCustomError) as raised:
        aggregator.functions.openLoan(*_open_loan_args(chain, offer, borrower_key)).call(
            {"from": devnet_account(1).address}
        )
    error = decode_revert(raised.value.data, REVERT_ARTIFACTS)  # OpenZeppelin's errors too (a pause, a token's)
    assert error is not None, f"undecoded revert data {raised.value.data!r}"
    assert error.name == expected_error, str(error)
