"""A lender's word about its offers over real HTTP: the simulated bank posts signed ``offer.withdrawn`` webhooks to the
running platform (as it posts ``payment.received``), and the platform acts on them in its database: a withdrawn
offer's quote shows ``withdrawn`` and accepting it is refused with a 409 naming the withdrawal, the lender not asked;
the other lenders' quotes of the request stand."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from api.wallet import sign_acceptance, sign_permit
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform

pytestmark = pytest.mark.e2e

CHAIN = "ethereum-local"
REQUEST = {
    "amount": "1000.00",
    "asset": "USDC",
    "term_days": 30,
    "collateral": {"asset": "WETH", "amount": "1.0"},
    "preferred_chains": [CHAIN],
}
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def platform(shared_platform: RunningPlatform) -> RunningPlatform:
    """The e2e package's platform with default settings (``tests/e2e/conftest.py``)."""
    return shared_platform


def _bank(platform: RunningPlatform) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{platform.lender_url}/control/lenders/sim-bank", timeout=30).json()
    return answer


def _report(platform: RunningPlatform, offer_ref: str, event_type: str, detail: str = "") -> dict[str, Any]:
    """The simulated bank posts ``event_type`` about ``offer_ref``, signed with its secret; the platform's answer."""
    report = {
        "webhook_url": f"{platform.api_url}/v1/providers/sim-bank/webhooks",
        "offer_ref": offer_ref,
        "type": event_type,
        "detail": detail,
    }
    response = httpx.post(f"{platform.lender_url}/control/lenders/sim-bank/offer-events", json=report, timeout=180)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _quoted(platform: RunningPlatform, key: str) -> tuple[dict[str, Any], str]:
    """A credit request's answer and the offer the simulated bank made for it (its reference, which only the lender
    and the platform know)."""
    before = set(_bank(platform)["offers"])
    with platform.client(key) as client:
        response = client.post("/v1/credit-requests", json=REQUEST)
    assert response.status_code == 201, response.text
    (offer_ref,) = set(_bank(platform)["offers"]) - before
    return response.json(), offer_ref


def _borrower(platform: RunningPlatform, chain: DeployedChain) -> tuple[LocalAccount, str]:
    wallet: LocalAccount = Account.create()
    weth = chain.contract("WETH")
    deployer = chain.w3.eth.accounts[0]
    tx = weth.functions.mint(wallet.address, 10**18).transact({"from": deployer})
    assert chain.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    return wallet, platform.onboard(wallet.address)


def _accept(
    platform: RunningPlatform, chain: DeployedChain, wallet: LocalAccount, key: str, quote_id: str
) -> httpx.Response:
    """The borrower signs the acceptance and a permit of the collateral, and posts them (the answer as it is)."""
    with platform.client(key) as client:
        quote = client.get(f"/v1/quotes/{quote_id}").raise_for_status().json()
        offer = quote["offer"]
        permit = sign_permit(
            wallet,
            chain.devnet.rpc_url,
            offer["collateralAsset"],
            quote["contract"],
            int(offer["collateralAmount"]),
            int(offer["expiry"]),
        )
        body: dict[str, Any] = {"signature": sign_acceptance(wallet, quote["acceptance_typed_data"])}
        return client.post(f"/v1/quotes/{quote_id}/accept", json=body | ({"permit": permit} if permit else {}))


def test_an_offer_its_lender_withdraws_shows_withdrawn_and_is_refused_at_accept(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    chain = devnet_chains[CHAIN]
    wallet, key = _borrower(platform, chain)
    request, offer_ref = _quoted(platform, key)
    bank = next(q for q in request["quotes"] if q["provider_id"] == "sim-bank")
    others = [q["id"] for q in request["quotes"] if q["provider_id"] != "sim-bank"]
    assert others, "a pool quoted the request too"

    posted = _report(platform, offer_ref, "offer.withdrawn", "the lender's funding line for this product closed")
    assert posted["status"] == 202, posted
    with platform.client(key) as client:
        assert client.get(f"/v1/quotes/{bank['id']}").json()["status"] == "withdrawn"
        listed = client.get(f"/v1/credit-requests/{request['id']}").json()
    assert posted["answer"] == {"accepted": posted["event_id"], "effect": "withdrawn"}
    assert _bank(platform)["offers"][offer_ref] == "withdrawn"
    statuses = {q["id"]: q["status"] for q in listed["quotes"]}
    assert statuses == {bank["id"]: "withdrawn"} | dict.fromkeys(others, "offered")
    assert listed["status"] == "quoted"

    reserves = _bank(platform)["requests"]["reserve"]
    refused = _accept(platform, chain, wallet, key, bank["id"])
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith(PROBLEM)
    problem = refused.json()
    assert problem["type"].endswith("/quote-withdrawn")
    assert "withdrawn by its lender sim-bank" in problem["detail"]
    assert _bank(platform)["requests"]["reserve"] == reserves, "the lender is not asked to reserve a withdrawn offer"

    again = _report(platform, offer_ref, "offer.withdrawn")
    assert (again["status"], again["answer"]["effect"]) == (202, "none"), "a repeat with a new event id changes nothing"
