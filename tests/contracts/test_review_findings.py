"""The findings of the contract review (issue 19), each as the scenario that reproduced it on the devnet harness,
asserting the fixed behaviour (each failed before its fix)."""

from __future__ import annotations

import dataclasses

import pytest
from eth_utils.crypto import keccak
from web3.logs import DISCARD

from tests.contracts.harness import BORROWERS, QUOTE_SIGNER, RELAYER, USDC, WETH, Harness
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.contracts

BORROWER = BORROWERS[0]
OTHER = BORROWERS[1]
LIQUIDATOR = BORROWERS[3]
RELAYER_ROLE = keccak(text="RELAYER_ROLE")


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
    h.send(h.manager.functions.addCollateral(loan_id, WETH), BORROWER)  # 20%
    to_78 = 2 * WETH - 1_200 * WETH // (3_000 * 784 // 1_000)  # leaves 1,200 / 0.784 / 3,000 WETH
    error = h.revert_of(h.manager.functions.withdrawCollateral(loan_id, to_78, BORROWER.address), BORROWER)
    assert error.name == "LtvAboveAttestation"
    assert error.args[1] == 4_000
    assert 7_800 <= error.args[0] <= 7_850
    # Back to exactly 40% is allowed; a wei more is not.
    h.send(h.manager.functions.withdrawCollateral(loan_id, WETH, BORROWER.address), BORROWER)
    error = h.revert_of(h.manager.functions.withdrawCollateral(loan_id, 10**12, BORROWER.address), BORROWER)
    assert (error.name, error.args[1]) == ("LtvAboveAttestation", 4_000)
