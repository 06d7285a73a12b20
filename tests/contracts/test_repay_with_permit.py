"""``repayWithPermit``: a repayment relayed for the borrower, who signs a ``Repayment`` (EIP-712) and an EIP-2612
permit of the debt asset and pays no gas. It never spends an allowance the borrower has standing without the
borrower's signature over this loan, this amount, this nonce; a front-run permit does not stop it; a wallet that
cannot sign permits (ERC-1271) repays from its standing allowance with its signature."""

from __future__ import annotations

import pytest
from web3.logs import DISCARD

from chain.artifacts import load_artifact
from contracts.typed_data import REPAY_ALL
from tests.contracts.harness import BORROWERS, RELAYER, USDC, WETH, Harness
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.contracts

BORROWER = BORROWERS[2]  # never approves USDC to the aggregator: every repayment here rides on a permit
OTHER = BORROWERS[1]
REPAID = 2


@pytest.fixture
def h(ethereum_local: DeployedChain) -> Harness:
    harness = Harness(ethereum_local)
    for account in (BORROWER, OTHER):
        harness.send(harness.weth.functions.approve(harness.aggregator.address, 2**256 - 1), account)
    return harness


def _usdc(h: Harness, account: str) -> int:
    return int(h.usdc.functions.balanceOf(account).call())


def test_a_relayed_repayment_is_paid_by_the_borrower_and_closes_with_repay_all(h: Harness) -> None:
    loan_id, _ = h.open_loan(BORROWER)
    h.advance(86_400)
    eth_before, usdc_before = h.w3.eth.get_balance(BORROWER.address), _usdc(h, BORROWER.address)
    assert h.usdc.functions.allowance(BORROWER.address, h.aggregator.address).call() == 0

    receipt = h.send(h.aggregator.functions.repayWithPermit(*h.repayment_args(BORROWER, loan_id, 100 * USDC)), RELAYER)
    (repaid,) = h.aggregator.events.LoanRepaid().process_receipt(receipt, errors=DISCARD)
    assert repaid["args"]["payer"] == BORROWER.address
    assert repaid["args"]["interestPaid"] + repaid["args"]["principalPaid"] == 100 * USDC
    assert _usdc(h, BORROWER.address) == usdc_before - 100 * USDC
    assert h.usdc.functions.allowance(BORROWER.address, h.aggregator.address).call() == 0

    principal, interest = h.aggregator.functions.amountOwed(loan_id).call()
    margin = 10 * USDC  # covers the interest of the seconds until the transaction is mined
    args = h.repayment_args(BORROWER, loan_id, REPAY_ALL, permit_value=principal + interest + margin)
    weth_before = h.weth.functions.balanceOf(BORROWER.address).call()
    receipt = h.send(h.aggregator.functions.repayWithPermit(*args), RELAYER)
    assert h.aggregator.events.LoanClosed().process_receipt(receipt, errors=DISCARD)
    assert h.loan(loan_id)["status"] == REPAID
    assert h.weth.functions.balanceOf(BORROWER.address).call() == weth_before + WETH, "collateral back"
    assert h.w3.eth.get_balance(BORROWER.address) == eth_before, "the borrower paid no gas"


def test_a_standing_allowance_is_never_spent_without_the_borrowers_signature(h: Harness) -> None:
    loan_id, _ = h.open_loan(BORROWER)
    h.send(h.usdc.functions.approve(h.aggregator.address, 2**256 - 1), BORROWER)  # say, for on-chain repays
    repayment, signature, permit = h.repayment_args(BORROWER, loan_id, 100 * USDC)
    stranger = h.repayment_args(BORROWER, loan_id, 100 * USDC, signer_key=OTHER.key)[1]
    bad_permit = (permit[0], permit[1], permit[2], permit[3], b"\x01" * 32)

    flipped = signature[:64] + bytes([55 - signature[64]])  # v 27 <-> 28: recovers another address
    for forged in (stranger, b"", flipped):
        error = h.revert_of(h.aggregator.functions.repayWithPermit(repayment, forged, bad_permit), RELAYER)
        assert (error.name, error.args) == ("InvalidRepaymentSignature", (BORROWER.address,))
    more = (repayment[0], 1_000 * USDC, repayment[2], repayment[3])  # the signature covers the amount
    error = h.revert_of(h.aggregator.functions.repayWithPermit(more, signature, bad_permit), RELAYER)
    assert error.name == "InvalidRepaymentSignature"
    other_loan, _ = h.open_loan(BORROWER)
    moved = (other_loan, *repayment[1:])  # and the loan
    error = h.revert_of(h.aggregator.functions.repayWithPermit(moved, signature, bad_permit), RELAYER)
    assert error.name == "InvalidRepaymentSignature"

    h.send(h.aggregator.functions.repayWithPermit(repayment, signature, bad_permit), RELAYER)  # consented: paid
    error = h.revert_of(h.aggregator.functions.repayWithPermit(repayment, signature, permit), RELAYER)
    assert (error.name, error.args) == ("RepaymentNonceUsed", (BORROWER.address, repayment[2]))


def test_expired_or_cancelled_repayments_are_refused(h: Harness) -> None:
    loan_id, _ = h.open_loan(BORROWER)
    late = h.repayment_args(BORROWER, loan_id, 10 * USDC, deadline=h.now() - 1)
    error = h.revert_of(h.aggregator.functions.repayWithPermit(*late), RELAYER)
    assert error.name == "RepaymentExpired"
    nonce = 2**70 + 5
    cancelled = h.repayment_args(BORROWER, loan_id, 10 * USDC, nonce=nonce)
    h.send(h.aggregator.functions.invalidateNonces(nonce >> 8, 1 << (nonce & 0xFF)), BORROWER)
    error = h.revert_of(h.aggregator.functions.repayWithPermit(*cancelled), RELAYER)
    assert (error.name, error.args) == ("RepaymentNonceUsed", (BORROWER.address, nonce))


def test_a_front_run_permit_does_not_stop_the_repayment(h: Harness) -> None:
    loan_id, _ = h.open_loan(BORROWER)
    repayment, signature, permit = h.repayment_args(BORROWER, loan_id, 50 * USDC)
    value, deadline, v, r, s = permit
    h.send(h.usdc.functions.permit(BORROWER.address, h.aggregator.address, value, deadline, v, r, s), OTHER)
    before = _usdc(h, BORROWER.address)
    h.send(h.aggregator.functions.repayWithPermit(repayment, signature, permit), RELAYER)
    assert _usdc(h, BORROWER.address) == before - 50 * USDC


def test_a_smart_wallet_repays_from_its_allowance_with_its_signature(h: Harness) -> None:
    artifact = load_artifact("MockSmartWallet")
    factory = h.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    deployed = h.w3.eth.wait_for_transaction_receipt(
        factory.constructor(OTHER.address).transact({"from": OTHER.address})
    )
    wallet = h.w3.eth.contract(address=deployed["contractAddress"], abi=artifact.abi)
    h.fund(wallet.address, weth=2 * WETH)
    h.send(wallet.functions.approve(h.weth.address, h.aggregator.address, 2 * WETH), OTHER)
    offer = h.offer(wallet.address)
    receipt = h.send(h.aggregator.functions.openLoan(*h.open_args(offer, OTHER.key)), RELAYER)
    loan_id = h.aggregator.events.LoanOpened().process_receipt(receipt, errors=DISCARD)[0]["args"]["loanId"]
    h.send(wallet.functions.approve(h.usdc.address, h.aggregator.address, 200 * USDC), OTHER)

    repayment, signature, permit = h.repayment_args(OTHER, loan_id, 200 * USDC)  # OTHER signs for its wallet
    h.send(h.aggregator.functions.repayWithPermit(repayment, signature, permit), RELAYER)  # the permit fails
    assert h.loan(loan_id)["outstandingPrincipal"] < offer.principal
    assert h.usdc.functions.allowance(wallet.address, h.aggregator.address).call() == 0
