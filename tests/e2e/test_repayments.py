"""Repaying through the API over real HTTP, against the session's devnets: a borrower with no ETH at all opens a pool
loan with a collateral permit, repays part of it with a signed repayment and a permit of USDC (the platform relays
``repayWithPermit``), then ``"max"``: the loan closes, the collateral is back, and the ledger agrees with the chain's
``LoanRepaid`` events to the wei. A repeated post is the same transaction; an amount over what is owed, a permit
that does not verify, a closed loan are refused as problems. A traditional loan: the simulated lender reports the
borrower's payments with signed ``payment.received`` webhooks; one payment reported twice is one
``recordOffchainRepayment`` by the operator; its payoff, reported ``paid_in_full`` for a cent under what the chain's
interest makes it, closes the loan."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from aggregator.offchain_payments import payment_ref_hash
from api.journey import fund_on_devnets, journey
from api.wallet import accept_quote, repay_loan, sign_permit, signed_repayment
from chain.signers import devnet_account
from tests.support.accepting import credit_request
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform

pytestmark = pytest.mark.e2e

DEPLOYER = devnet_account(0)
CHAIN = "ethereum-local"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def platform(shared_platform: RunningPlatform) -> RunningPlatform:
    """The e2e package's platform with default settings (``tests/e2e/conftest.py``)."""
    return shared_platform


def _mint(chain: DeployedChain, token: str, to: str, amount: int) -> None:
    tx_hash = chain.contract(token).functions.mint(to, amount).transact({"from": DEPLOYER.address})
    assert chain.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1


def _open_pool_loan(platform: RunningPlatform, chain: DeployedChain, wallet: LocalAccount) -> tuple[str, str]:
    """A pool loan accepted with a collateral permit (no ETH spent); its id and the borrower's API key."""
    key = platform.onboard(wallet.address)
    with platform.client(key) as client:
        response = client.post("/v1/credit-requests", json=credit_request(CHAIN))
        assert response.status_code == 201, response.text
        quote = next(q for q in response.json()["quotes"] if q["kind"] == "pool" and q["chain"] == CHAIN)
    loan = accept_quote(wallet, platform.api_url, key, quote["id"], chain.devnet.rpc_url)
    return str(loan["id"]), key


def _owed_now(chain: DeployedChain, loan: dict[str, Any]) -> int:
    """What the loan owes at the chain's latest block, in base units."""
    principal, interest = chain.contract("CreditAggregator").functions.amountOwed(int(loan["onchain_loan_id"])).call()
    return int(principal) + int(interest)


def _onchain_repayments(chain: DeployedChain, loan_ref: int) -> list[dict[str, Any]]:
    events = (
        chain.contract("CreditAggregator")
        .events.LoanRepaid()
        .get_logs(from_block=0, argument_filters={"loanId": loan_ref})
    )
    return [dict(event["args"]) for event in events]


def test_a_borrower_without_eth_repays_and_closes_a_pool_loan(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    chain = devnet_chains[CHAIN]
    rpc = chain.devnet.rpc_url
    wallet: LocalAccount = Account.create()
    _mint(chain, "WETH", wallet.address, 2 * 10**18)
    _mint(chain, "USDC", wallet.address, 50 * 10**6)  # the fee and the interest: the proceeds are principal − fee
    loan_id, key = _open_pool_loan(platform, chain, wallet)
    weth = chain.contract("WETH").functions.balanceOf(wallet.address)
    assert weth.call() == 10**18, "one WETH is the collateral"

    partial = repay_loan(wallet, platform.api_url, key, loan_id, "100.00", rpc)
    assert (partial["status"], partial["closed"]) == ("confirmed", False)
    assert Decimal(partial["interest_paid"]) + Decimal(partial["principal_paid"]) == Decimal(100)
    loan = partial["loan"]
    assert [r["principal_paid"] for r in loan["repayments"]] == [partial["principal_paid"]]
    assert Decimal(loan["live"]["total_owed"]) >= Decimal(loan["outstanding_principal"]) > 0

    with platform.client(key) as client:
        body = signed_repayment(wallet, loan, "10.00", rpc)
        first = client.post(f"/v1/loans/{loan_id}/repayments", json=body)
        again = client.post(f"/v1/loans/{loan_id}/repayments", json=body)
        assert first.status_code == again.status_code == 201, again.text
        assert first.json()["transaction_hash"] == again.json()["transaction_hash"], "one transaction"

        owed_now = Decimal(loan["live"]["total_owed"])
        over = client.post(f"/v1/loans/{loan_id}/repayments", json=signed_repayment(wallet, loan, "5000.00", rpc))
        assert (over.status_code, over.headers["content-type"]) == (422, PROBLEM)
        assert over.json()["type"].endswith("/amount-over-owed")
        assert Decimal(over.json()["owed_now"]) <= owed_now

        forged = signed_repayment(wallet, loan, "1.00", rpc)
        forged["permit"] = signed_repayment(Account.create(), loan, "1.00", rpc)["permit"]
        refused = client.post(f"/v1/loans/{loan_id}/repayments", json=forged)
        assert (refused.status_code, refused.json()["errors"][0]["field"]) == (422, "permit"), refused.text

        # "max" pays what is owed when mined: a permit of only what is owed now would fall short a second later
        short = signed_repayment(wallet, loan, "max", rpc)
        usdc, owed = chain.record.address("USDC"), _owed_now(chain, loan)
        short["permit"] = sign_permit(wallet, rpc, usdc, loan["contract"], owed, short["deadline"])
        uncovered = client.post(f"/v1/loans/{loan_id}/repayments", json=short)
        assert (uncovered.status_code, uncovered.json()["errors"][0]["field"]) == (422, "permit.value"), uncovered.text
        assert "by the repayment's deadline" in uncovered.json()["errors"][0]["message"]

    closed = repay_loan(wallet, platform.api_url, key, loan_id, "max", rpc)
    assert (closed["status"], closed["closed"]) == ("confirmed", True), closed
    record = closed["loan"]
    assert (record["status"], record["live"]) == ("repaid", None)
    assert weth.call() == 2 * 10**18, "the collateral is back"
    assert chain.w3.eth.get_balance(wallet.address) == 0, "the borrower never needed ETH"

    onchain = _onchain_repayments(chain, int(record["onchain_loan_id"]))
    assert len(onchain) == len(record["repayments"]) == 3
    assert all(event["payer"] == wallet.address for event in onchain)
    units = 10**6
    assert sum(e["principalPaid"] for e in onchain) == int(record["principal"].replace(".", "")) * units // 100
    assert int(Decimal(record["interest_paid"]) * units) == sum(e["interestPaid"] for e in onchain)
    assert int(Decimal(record["principal_paid"]) * units) == sum(e["principalPaid"] for e in onchain)
    assert record["outstanding_principal"] == "0.00"

    with platform.client(key) as client:
        late = client.post(f"/v1/loans/{loan_id}/repayments", json=signed_repayment(wallet, record, "1.00", rpc))
        assert (late.status_code, late.json()["type"].rsplit("/", 1)[1]) == (409, "loan-not-repayable")
        stranger = platform.onboard(Account.create().address)
    with httpx.Client(base_url=platform.api_url, headers={"X-API-Key": stranger}) as other:
        hidden = other.post(f"/v1/loans/{loan_id}/repayments", json=signed_repayment(wallet, record, "1.00", rpc))
        assert hidden.status_code == 404


def _reserved(platform: RunningPlatform) -> dict[str, Any]:
    """The simulated bank's reserved offers by reference (funded ones stay listed)."""
    reserved: dict[str, Any] = httpx.get(f"{platform.lender_url}/control/lenders/sim-bank", timeout=30).json()[
        "reserved"
    ]
    return reserved


def _report_payment(
    platform: RunningPlatform, offer_ref: str, payment_ref: str, amount: str, *, paid_in_full: bool = False
) -> dict[str, Any]:
    """The simulated bank posts payment.received (signed with its secret) to the platform's webhook."""
    report = {
        "webhook_url": f"{platform.api_url}/v1/providers/sim-bank/webhooks",
        "offer_ref": offer_ref,
        "payment_ref": payment_ref,
        "amount": amount,
        "paid_in_full": paid_in_full,
    }
    response = httpx.post(f"{platform.lender_url}/control/lenders/sim-bank/payments", json=report, timeout=180)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["status"] == 202, answer
    return dict(answer["answer"])


def test_a_lenders_payment_reported_twice_is_recorded_once_and_its_payoff_closes_the_loan(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    chain = devnet_chains[CHAIN]
    wallet: LocalAccount = Account.create()
    _mint(chain, "WETH", wallet.address, 10**18)
    key = platform.onboard(wallet.address)
    with platform.client(key) as client:
        response = client.post("/v1/credit-requests", json=credit_request(CHAIN))
        assert response.status_code == 201, response.text
        quote = next(q for q in response.json()["quotes"] if q["kind"] == "traditional" and q["chain"] == CHAIN)
    # the simulated bank serves the other tests sharing this platform too: the offer this accept reserved
    reserved_before = set(_reserved(platform))
    loan = accept_quote(wallet, platform.api_url, key, quote["id"], chain.devnet.rpc_url)
    (offer_ref,) = set(_reserved(platform)) - reserved_before

    first = _report_payment(platform, offer_ref, "pay-0001", "300.00")
    again = _report_payment(platform, offer_ref, "pay-0001", "300.00")
    assert first["status"] == again["status"] == "confirmed"
    assert first["transaction_hash"] == again["transaction_hash"], "one recordOffchainRepayment"
    aggregator = chain.contract("CreditAggregator")
    loan_ref = int(loan["onchain_loan_id"])
    recorded = aggregator.events.LoanRepaid().get_logs(from_block=0, argument_filters={"loanId": loan_ref})
    assert [e["args"]["paymentRef"] for e in recorded] == [payment_ref_hash("sim-bank", "pay-0001")]
    assert recorded[0]["args"]["payer"] == devnet_account(4).address, "the operator account"

    # the bank's payoff figure, a cent under what the chain's per-second interest makes it: paid in full on its books
    principal, interest = aggregator.functions.amountOwed(loan_ref).call()
    payoff = format(Decimal(principal + interest - 10**4) / 10**6, "f")
    last = _report_payment(platform, offer_ref, "pay-0002", payoff, paid_in_full=True)
    assert last["status"] == "confirmed"
    with platform.client(key) as client:
        record = client.get(f"/v1/loans/{loan['id']}").json()
    assert record["status"] == "repaid"
    assert [r["payment_ref"] for r in record["repayments"]] == [
        "0x" + payment_ref_hash("sim-bank", ref).hex() for ref in ("pay-0001", "pay-0002")
    ]
    assert chain.contract("WETH").functions.balanceOf(wallet.address).call() == 10**18, "the collateral is back"
    late = httpx.post(
        f"{platform.lender_url}/control/lenders/sim-bank/payments",
        json={
            "webhook_url": f"{platform.api_url}/v1/providers/sim-bank/webhooks",
            "offer_ref": offer_ref,
            "payment_ref": "pay-0003",
            "amount": "1.00",
        },
        timeout=60,
    ).json()
    assert late["status"] == 409, late


def test_the_journey_creditmesh_run_shows_ends_with_the_collateral_back(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    wallet: LocalAccount = Account.create()

    def rpc_for(name: str) -> str:
        return devnet_chains[name].devnet.rpc_url

    fund_on_devnets(platform.api_url, platform.admin_key, rpc_for, wallet.address)  # the best quote may be anywhere
    key = platform.onboard(wallet.address)
    lines: list[str] = []
    record = journey(platform.api_url, key, wallet, rpc_for, lines.append)
    assert [line.split()[0] for line in lines if line[0].isdigit()] == ["1.", "2.", "3.", "4.", "5."]
    assert lines[-1] == "5. collateral back: wallet holds 1 WETH"
    assert record["status"] == "repaid"
    assert all(chain.w3.eth.get_balance(wallet.address) == 0 for chain in devnet_chains.values())
