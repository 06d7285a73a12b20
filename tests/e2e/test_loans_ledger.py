"""The loans API over real HTTP with the indexer running in the API process (``CREDITMESH_WORKERS=indexer``, the
platform shared with the accept saga's tests): a loan
opened on-chain with the relayer key outside the accept appears in the ledger, linked to its quote and flagged; an
accepted loan is not flagged; a repayment made on-chain reaches the record; the list is the borrower's own, newest
first, in cursor pages."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy.orm import Session
from web3.logs import DISCARD

from aggregator.offers import acceptance_for, attestation_from_row
from api.wallet import approve_collateral, sign_acceptance
from chain.signers import devnet_account
from store.aggregator import QuoteRow
from tests.support.accepting import credit_request
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform
from tests.support.saga import disarmed

pytestmark = pytest.mark.e2e

DEPLOYER, RELAYER = devnet_account(0), devnet_account(1)
CHAIN = "ethereum-local"


@pytest.fixture(scope="module")
def platform(ledger_platform: RunningPlatform) -> RunningPlatform:
    """The accept saga's platform (tests/e2e/conftest.py), without a kill point."""
    disarmed(ledger_platform)
    return ledger_platform


@pytest.fixture(scope="module")
def wallet(devnet_chains: dict[str, DeployedChain]) -> LocalAccount:
    """A fresh borrower wallet with gas money and 5 WETH of collateral (the mock token's open mint)."""
    account: LocalAccount = Account.create()
    chain = devnet_chains[CHAIN]
    chain.w3.provider.make_request("anvil_setBalance", [account.address, hex(10**20)])  # type: ignore[arg-type]
    _send(chain, chain.contract("WETH").functions.mint(account.address, 5 * 10**18), DEPLOYER)
    _send(chain, chain.contract("USDC").functions.mint(account.address, 100 * 10**6), DEPLOYER)
    return account


def _send(chain: DeployedChain, call: Any, sender: LocalAccount) -> Any:
    tx = call.build_transaction(
        {"from": sender.address, "nonce": chain.w3.eth.get_transaction_count(sender.address, "pending")}
    )
    tx["gas"] = tx["gas"] * 3 // 2  # the estimate is for the state before the block it lands in
    tx_hash = chain.w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    receipt = chain.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    assert receipt["status"] == 1
    return receipt


def _pool_quote(client: httpx.Client) -> dict[str, Any]:
    response = client.post("/v1/credit-requests", json=credit_request(CHAIN))
    assert response.status_code == 201, response.text
    return next(q for q in response.json()["quotes"] if q["kind"] == "pool" and q["chain"] == CHAIN)


def _relay_outside_the_accept(
    platform: RunningPlatform, chain: DeployedChain, quote: dict[str, Any], wallet: LocalAccount
) -> str:
    """openLoan sent with the relayer key straight to the chain, from the quote as stored: no accept of ours."""
    engine = sa.create_engine(platform.database_url)
    with Session(engine) as session:
        row = session.get(QuoteRow, quote["id"])
        assert row is not None
        args = (
            acceptance_for(row).as_abi_tuple(),
            bytes.fromhex(row.offer_signature.removeprefix("0x")),
            bytes.fromhex(sign_acceptance(wallet, quote["acceptance_typed_data"]).removeprefix("0x")),
            attestation_from_row(row).as_abi_tuple(),
            bytes.fromhex(row.attestation_signature.removeprefix("0x")),
        )
    engine.dispose()
    receipt = _send(chain, chain.contract("CreditAggregator").functions.openLoan(*args), RELAYER)
    return str(receipt["transactionHash"].to_0x_hex())


def _wait_for(client: httpx.Client, predicate: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get("/v1/loans", params={"limit": 200}).json()
        if predicate(body["items"]):
            return body
        assert time.monotonic() < deadline, f"the ledger did not catch up: {body}"
        time.sleep(0.3)


def test_the_ledger_follows_loans_opened_in_and_outside_the_accept(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain], wallet: LocalAccount
) -> None:
    chain = devnet_chains[CHAIN]
    key = platform.onboard(wallet.address)
    aggregator = chain.contract("CreditAggregator")
    with platform.client(key) as client:
        accepted = _pool_quote(client)
        outside = _pool_quote(client)
        collateral = outside["offer"]["collateralAsset"]
        approve_collateral(wallet, chain.devnet.rpc_url, collateral, outside["contract"], 2 * 10**18)
        response = client.post(
            f"/v1/quotes/{accepted['id']}/accept",
            json={"signature": sign_acceptance(wallet, accepted["acceptance_typed_data"])},
        )
        assert response.status_code == 201, response.text
        loan = response.json()
        assert loan["flags"] == []

        # the relayer key used outside the platform (after the accept: the platform's own nonce allocator does not
        # expect another sender on its key)
        outside_tx = _relay_outside_the_accept(platform, chain, outside, wallet)
        body = _wait_for(client, lambda items: any(i["transaction_hash"] == outside_tx for i in items))
        (flagged,) = [i for i in body["items"] if i["transaction_hash"] == outside_tx]
        assert flagged["quote_id"] == outside["id"]
        assert flagged["flags"] == ["opened_outside_accept"]
        assert flagged["status"] == "active"
        assert flagged["principal"] == "1000.00"
        assert flagged["collateral"] == {"asset": "WETH", "amount": "1.00", "base_units": str(10**18)}

        # a repayment made on-chain by the borrower reaches the record of the flagged loan
        receipt = chain.w3.eth.get_transaction_receipt(outside_tx)  # type: ignore[arg-type]
        (opened,) = aggregator.events.LoanOpened().process_receipt(receipt, errors=DISCARD)
        loan_ref = int(opened["args"]["loanId"])
        pool = chain.record.address("LendingPool:USDC")
        _send(chain, chain.contract("USDC").functions.approve(aggregator.address, 50 * 10**6), wallet)
        _send(chain, aggregator.functions.repay(loan_ref, 50 * 10**6), wallet)
        # wait on the principal: a few seconds' interest on 1,000 USDC is a few base units, shown as "0.00"
        _wait_for(client, lambda items: any(i["id"] == flagged["id"] and i["principal_paid"] != "0.00" for i in items))
        shown = client.get(f"/v1/loans/{flagged['id']}").json()
        assert [r["payer"] for r in shown["repayments"]] == [wallet.address]
        interest, principal = (shown["repayments"][0][k] for k in ("interest_paid", "principal_paid"))
        assert _units(interest) + _units(principal) == 50 * 10**6
        assert _units(shown["outstanding_principal"]) == 1_000 * 10**6 - _units(principal)
        assert shown["funder"] == pool
        assert shown["live"]["health_factor"] is not None
        assert _units(shown["live"]["principal_owed"]) == _units(shown["outstanding_principal"])
        assert [m["direction"] for m in shown["collateral_movements"]] == ["added"]

        # the borrower's own loans, newest first, a page at a time
        first = client.get("/v1/loans", params={"limit": 1}).json()
        assert [i["id"] for i in first["items"]] == [flagged["id"]]
        second = client.get(first["next"]).json()
        assert [i["id"] for i in second["items"]] == [loan["id"]]
        assert second["next"] is None
        assert client.get("/v1/loans", params={"cursor": "not-a-cursor"}).status_code == 400
        assert client.get("/v1/loans", params={"limit": 0}).status_code == 422
        assert client.get("/v1/loans", params={"limit": 201}).status_code == 422
    other = platform.onboard(Account.create().address)
    with platform.client(other) as client:
        assert client.get("/v1/loans").json() == {"items": [], "next": None}
        assert client.get(f"/v1/loans/{flagged['id']}").status_code == 404
    with platform.client(platform.admin_key) as client:
        everyone = client.get("/v1/loans", params={"limit": 200}).json()["items"]
        assert {loan["id"], flagged["id"]} <= {i["id"] for i in everyone}


def _units(amount: str) -> int:
    whole, _, fraction = amount.partition(".")
    return int(whole) * 10**6 + int(fraction.ljust(6, "0"))
