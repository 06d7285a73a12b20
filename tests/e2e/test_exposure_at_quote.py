"""What a borrower is quoted is what they may accept, over real HTTP with the simulated bank and the pools on anvil:
a borrower with an open loan asking for more than risk's limit leaves room for is refused at once (409
``exposure-limit``, the open principal and the limit named), no lender asked and no quote stored, the request
recorded declined and a decision denying it listed; within the limit it is quoted and the accept opens the loan. A
borrower whose KYC tier caps what it may owe for a traditional loan is quoted only the pools' offers once its open
loan and the amount pass that cap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from eth_account import Account
from eth_account.signers.local import LocalAccount

from api.demo import passport_kyc
from api.wallet import approve_collateral, sign_acceptance
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform

pytestmark = pytest.mark.e2e

CHAIN = "ethereum-local"
REQUEST = {
    "asset": "USDC",
    "term_days": 30,
    "collateral": {"asset": "WETH", "amount": "1.0"},
    "preferred_chains": [CHAIN],
}


@pytest.fixture(scope="module")
def platform(shared_platform: RunningPlatform) -> RunningPlatform:
    """The e2e package's platform with default settings (``tests/e2e/conftest.py``)."""
    return shared_platform


@pytest.fixture(scope="module")
def chain(devnet_chains: dict[str, DeployedChain]) -> DeployedChain:
    return devnet_chains[CHAIN]


def _wallet(chain: DeployedChain) -> LocalAccount:
    """A fresh wallet with gas and 5 WETH (MockERC20.mint is open)."""
    account: LocalAccount = Account.create()
    chain.w3.provider.make_request("anvil_setBalance", [account.address, hex(10**18)])  # type: ignore[arg-type]
    mint: Any = chain.contract("WETH").functions.mint(account.address, 5 * 10**18)
    tx = mint.build_transaction({"from": account.address, "nonce": chain.w3.eth.get_transaction_count(account.address)})
    sent = chain.w3.eth.send_raw_transaction(account.sign_transaction(dict(tx)).raw_transaction)
    assert chain.w3.eth.wait_for_transaction_receipt(sent)["status"] == 1
    return account


def _ask(platform: RunningPlatform, key: str, amount: str) -> httpx.Response:
    with platform.client(key) as client:
        return client.post("/v1/credit-requests", json=REQUEST | {"amount": amount})


def _quoted(platform: RunningPlatform, key: str, amount: str) -> dict[str, Any]:
    response = _ask(platform, key, amount)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "quoted", body
    return body


def _accept(
    platform: RunningPlatform, key: str, account: LocalAccount, chain: DeployedChain, quote: dict[str, Any]
) -> None:
    offer = quote["offer"]
    approve_collateral(
        account, chain.devnet.rpc_url, offer["collateralAsset"], quote["contract"], int(offer["collateralAmount"])
    )
    with platform.client(key) as client:
        response = client.post(
            f"/v1/quotes/{quote['id']}/accept",
            json={"signature": sign_acceptance(account, quote["acceptance_typed_data"])},
        )
    assert response.status_code == 201, response.text


def _pool_quote(request: dict[str, Any]) -> dict[str, Any]:
    return next(q for q in request["quotes"] if q["kind"] == "pool")


def _asked_for_quotes(platform: RunningPlatform) -> int:
    books = httpx.get(f"{platform.lender_url}/control/lenders/sim-bank", timeout=10).json()
    return int(books["requests"].get("quote", 0))


def _stored_quotes(platform: RunningPlatform, request_id: str) -> int:
    engine = sa.create_engine(f"sqlite:///{Path(platform.data_dir) / 'creditmesh.db'}")
    try:
        with engine.connect() as connection:
            counted = connection.execute(
                sa.text("select count(*) from quotes where request_id = :id"), {"id": request_id}
            ).scalar_one()
    finally:
        engine.dispose()
    return int(counted)


def test_a_borrower_asking_past_its_limit_with_a_loan_open_is_refused_at_once_and_within_it_is_quoted(
    platform: RunningPlatform, chain: DeployedChain
) -> None:
    account = _wallet(chain)
    key = platform.onboard(account.address)
    _accept(platform, key, account, chain, _pool_quote(_quoted(platform, key, "1000.00")))

    asked = _asked_for_quotes(platform)
    refused = _ask(platform, key, "1500.00")  # 2,500 owed with it on 1 WETH: past what risk allows
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["type"].endswith("/exposure-limit")
    assert (problem["limit"], problem["open_principal"]) == ("risk.max_amount", "1000.000000")
    assert problem["open_principal_after"] == "2500.000000"
    assert "1000.000000 open now" in problem["detail"]
    assert f"risk.max_amount limit of {problem['limit_amount']}" in problem["detail"]
    assert _asked_for_quotes(platform) == asked, "no lender is asked for an offer that cannot close"
    # recorded as the request's decline, with no quote
    assert _stored_quotes(platform, problem["request_id"]) == 0
    with platform.client(key) as client:
        declined = client.get(f"/v1/credit-requests/{problem['request_id']}").json()
    assert (declined["status"], declined["quotes"], declined["provider_outcomes"]) == ("declined", [], [])
    assert declined["risk"]["max_amount"] == problem["limit_amount"]
    assert declined["risk"]["exposure"]["refused"] == "exposure-limit"
    # declined for the exposure, not approved: the reason on record is the refusal's, the scoring's kept apart
    assert declined["risk"]["approved"] is False
    assert [r["code"] for r in declined["risk"]["reasons"]] == ["R42"]
    assert declined["risk"]["assessed"]["approved"] is True
    # and the decisions list shows the request denied and why, beside the scoring decision that approved it
    with platform.client(platform.admin_key) as admin:
        listed = admin.get("/v1/decisions", params={"request_id": problem["request_id"]}).json()["items"]
    outcomes = sorted((d["kind"], d["outcome"]) for d in listed)
    assert outcomes == [
        ("credit-request", "allow"),
        ("credit-request", "allow"),
        ("credit-request", "deny"),
        ("risk", "allow"),
    ]
    (denial,) = [d for d in listed if d["outcome"] == "deny"]
    assert [r["code"] for r in denial["reasons"]] == ["R42"]
    assert "(1000.000000 open now), above the risk.max_amount limit" in denial["reasons"][0]["message"]

    within = _quoted(platform, key, "500.00")  # 1,500 owed with it
    assert within["risk"]["exposure"] == {"open_principal": "1000.000000"}
    assert {q["kind"] for q in within["quotes"]} == {"pool", "traditional"}
    _accept(platform, key, account, chain, _pool_quote(within))


def test_a_borrower_whose_kyc_tier_caps_traditional_loans_is_quoted_only_what_it_may_accept(
    platform: RunningPlatform, chain: DeployedChain
) -> None:
    account = _wallet(chain)
    kyc = passport_kyc("US-FL")
    kyc["document"]["number"] = "B1234567"  # the simulated provider verifies it at BASIC: 1,000 traditional, 2,500 DeFi
    key = platform.onboard(account.address, kyc=kyc)
    _accept(platform, key, account, chain, _pool_quote(_quoted(platform, key, "600.00")))

    request = _quoted(platform, key, "600.00")  # 1,200 owed with it: past BASIC's traditional 1,000
    assert {q["kind"] for q in request["quotes"]} == {"pool"}
    (bank,) = [o for o in request["provider_outcomes"] if o["provider_id"] == "sim-bank"]
    assert bank["outcome"] == "ineligible"
    assert "kyc.tier_limit.basic limit of 1000" in bank["detail"]
    _accept(platform, key, account, chain, _pool_quote(request))
