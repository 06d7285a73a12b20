"""A lender's word about its offers over real HTTP: the simulated bank posts signed ``offer.withdrawn`` and
``offer.funding_failed`` webhooks to the running platform (as it posts ``payment.received``), and the platform acts on
them in its database: a withdrawn offer's quote shows ``withdrawn`` and accepting it is refused with a 409 naming the
withdrawal, the lender not asked, the other lenders' quotes of the request standing; an accept whose loan is open
on-chain and waits on the lender's funding fails (409 ``funding-failed`` naming the loan), once however often the
lender reports it; a report racing the accept's reservation is answered 503 (sent again later) and the lender's own
refusal of the funding instruction ends the accept the same way; an offer not in funding is not touched."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.support.accepting import accept_with_permit, credit_request, sim_bank
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform
from tests.support.saga import disarmed

pytestmark = pytest.mark.e2e

CHAIN = "ethereum-local"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def platform(shared_platform: RunningPlatform) -> RunningPlatform:
    """The e2e package's platform with default settings (``tests/e2e/conftest.py``)."""
    return shared_platform


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
    before = set(sim_bank(platform)["offers"])
    with platform.client(key) as client:
        response = client.post("/v1/credit-requests", json=credit_request(CHAIN))
    assert response.status_code == 201, response.text
    (offer_ref,) = set(sim_bank(platform)["offers"]) - before
    return response.json(), offer_ref


def _borrower(platform: RunningPlatform, chain: DeployedChain) -> tuple[LocalAccount, str]:
    wallet: LocalAccount = Account.create()
    weth = chain.contract("WETH")
    deployer = chain.w3.eth.accounts[0]
    tx = weth.functions.mint(wallet.address, 10**18).transact({"from": deployer})
    assert chain.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    return wallet, platform.onboard(wallet.address)


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
    assert sim_bank(platform)["offers"][offer_ref] == "withdrawn"
    statuses = {q["id"]: q["status"] for q in listed["quotes"]}
    assert statuses == {bank["id"]: "withdrawn"} | dict.fromkeys(others, "offered")
    assert listed["status"] == "quoted"

    reserves = sim_bank(platform)["requests"]["reserve"]
    refused = accept_with_permit(platform, chain, wallet, key, bank["id"])
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith(PROBLEM)
    problem = refused.json()
    assert problem["type"].endswith("/quote-withdrawn")
    assert "withdrawn by its lender sim-bank" in problem["detail"]
    assert sim_bank(platform)["requests"]["reserve"] == reserves, "the lender is not asked to reserve a withdrawn offer"

    again = _report(platform, offer_ref, "offer.withdrawn")
    assert (again["status"], again["answer"]["effect"]) == (202, "none"), "a repeat with a new event id changes nothing"


def _control(platform: RunningPlatform, what: str, body: dict[str, Any]) -> None:
    answer = httpx.put(f"{platform.lender_url}/control/lenders/sim-bank/{what}", json=body, timeout=30)
    assert answer.status_code == 200, answer.text


def _reserved_refs(platform: RunningPlatform) -> set[str]:
    return set(sim_bank(platform)["reserved"])


def test_a_funding_the_lender_reports_failed_fails_the_accept_waiting_on_it(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    chain = devnet_chains[CHAIN]
    wallet, key = _borrower(platform, chain)
    request, offer_ref = _quoted(platform, key)
    bank = next(q for q in request["quotes"] if q["provider_id"] == "sim-bank")

    # an offer nobody accepted: its failure is stored and logged, nothing else
    untouched = _report(platform, offer_ref, "offer.funding_failed")
    assert (untouched["status"], untouched["answer"]["effect"]) == (202, "none"), untouched
    with platform.client(key) as client:
        assert client.get(f"/v1/quotes/{bank['id']}").json()["status"] == "offered"
    request, offer_ref = _quoted(platform, key)  # the bank failed that offer on its side: a new request
    bank = next(q for q in request["quotes"] if q["provider_id"] == "sim-bank")

    _control(platform, "fund-outage", {"status_code": 503})
    try:
        accepted = accept_with_permit(platform, chain, wallet, key, bank["id"])
    finally:
        _control(platform, "fund-outage", {"status_code": None})
    assert accepted.status_code == 201, accepted.text  # the loan is open on-chain; its funding not delivered yet
    loan = accepted.json()
    assert offer_ref in _reserved_refs(platform)

    posted = _report(platform, offer_ref, "offer.funding_failed", "the disbursement account was frozen")
    assert posted["status"] == 202, posted
    again = accept_with_permit(platform, chain, wallet, key, bank["id"])
    assert again.status_code == 409, again.text
    assert again.headers["content-type"].startswith(PROBLEM)
    problem = again.json()
    assert problem["type"].endswith("/funding-failed")
    assert (problem["loan_id"], problem["quote_id"]) == (loan["id"], bank["id"])
    assert "sim-bank reported that funding the loan failed" in problem["detail"]
    assert "frozen" not in problem["detail"], "the lender's own words are for the operator"
    assert posted["answer"] == {"accepted": posted["event_id"], "effect": "funding-failed"}

    repeated = _report(platform, offer_ref, "offer.funding_failed")
    assert (repeated["status"], repeated["answer"]["effect"]) == (202, "none"), "the accept failed once"
    funds = sim_bank(platform)["requests"]["fund"]
    assert accept_with_permit(platform, chain, wallet, key, bank["id"]).status_code == 409
    assert sim_bank(platform)["requests"]["fund"] == funds, "a failed funding is not instructed again"
    with platform.client(key) as client:
        assert client.get(f"/v1/loans/{loan['id']}").json()["status"] == "active", "the chain's loan, as it is"


def test_a_failed_funding_reported_while_the_accept_reserves_is_sent_again_and_the_lenders_refusal_ends_it(
    ledger_platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    """On the saga's platform (PostgreSQL, lenders given 10 s: a reservation held for seconds)."""
    platform = ledger_platform
    disarmed(platform)
    chain = devnet_chains[CHAIN]
    wallet, key = _borrower(platform, chain)
    request, offer_ref = _quoted(platform, key)
    bank = next(q for q in request["quotes"] if q["provider_id"] == "sim-bank")
    _control(platform, "reserve-delay", {"seconds": 4})
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            accepting = pool.submit(accept_with_permit, platform, chain, wallet, key, bank["id"])
            deadline = time.monotonic() + 60
            while offer_ref not in _reserved_refs(platform):
                assert time.monotonic() < deadline, "the accept never reserved the offer"
                time.sleep(0.1)
            early = _report(platform, offer_ref, "offer.funding_failed", "the lender's funding failed")
            answer = accepting.result(timeout=300)
    finally:
        _control(platform, "reserve-delay", {"seconds": 0})
    assert early["status"] == 503, early  # the accept is under way: not stored, to be sent again
    assert "under way" in early["answer"]["detail"]
    # the lender's funding desk failed the offer: it refuses the funding instruction once the loan is open
    assert answer.status_code == 409, answer.text
    assert answer.json()["type"].endswith("/funding-failed")
    assert "sim-bank refused to fund the loan" in answer.json()["detail"]
    resent = _report(platform, offer_ref, "offer.funding_failed", "the lender's funding failed")
    assert (resent["status"], resent["answer"]["effect"]) == (202, "none"), "settled by the lender's answer first"
