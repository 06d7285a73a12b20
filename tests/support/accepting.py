"""A borrower's request and accept over HTTP, as a wallet makes them: the credit request the e2e tests post, a new
borrower quoted by the simulated bank, the quote read, the acceptance signed, and a permit of the collateral signed
when its token has one; and the simulated bank's books and funding desk through its control API (the e2e tests of
lender offer events, of unfunded loans and of loans whose funding is pending)."""

from __future__ import annotations

from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from api.wallet import sign_acceptance, sign_permit
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform

WETH = 10**18


def credit_request(chain: str) -> dict[str, Any]:
    """A borrower's request as the e2e tests post it: 1,000 USDC for 30 days against 1 WETH, quoted on ``chain``."""
    return {
        "amount": "1000.00",
        "asset": "USDC",
        "term_days": 30,
        "collateral": {"asset": "WETH", "amount": "1.0"},
        "preferred_chains": [chain],
    }


def sim_bank(platform: RunningPlatform) -> dict[str, Any]:
    """The simulated bank's books as its control API shows them (its offers by reference and their states …)."""
    answer: dict[str, Any] = httpx.get(f"{platform.lender_url}/control/lenders/sim-bank", timeout=30).json()
    return answer


def fund_outage(platform: RunningPlatform, status_code: int | None) -> None:
    """The simulated bank's funding desk answers every funding instruction with ``status_code`` from now on (None: it
    is back and funds them)."""
    answer = httpx.put(
        f"{platform.lender_url}/control/lenders/sim-bank/fund-outage", json={"status_code": status_code}, timeout=30
    )
    assert answer.status_code == 200, answer.text


def quoted_by_the_bank(
    platform: RunningPlatform, chain: DeployedChain
) -> tuple[LocalAccount, str, dict[str, Any], str]:
    """A new borrower holding 1 WETH on ``chain``, quoted by the simulated bank: its wallet, API key, the bank's quote
    and the bank's own reference of its offer."""
    wallet: LocalAccount = Account.create()
    minted = chain.contract("WETH").functions.mint(wallet.address, WETH).transact({"from": chain.w3.eth.accounts[0]})
    assert chain.w3.eth.wait_for_transaction_receipt(minted)["status"] == 1
    key = platform.onboard(wallet.address)
    offers_before = set(sim_bank(platform)["offers"])
    with platform.client(key) as client:
        response = client.post("/v1/credit-requests", json=credit_request(chain.name))
    assert response.status_code == 201, response.text
    bank = next(q for q in response.json()["quotes"] if q["provider_id"] == "sim-bank")
    (offer_ref,) = set(sim_bank(platform)["offers"]) - offers_before
    return wallet, key, bank, offer_ref


def accept_with_permit(
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
