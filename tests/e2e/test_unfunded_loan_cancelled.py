"""A loan its lender never funds, end to end: the borrower accepts the simulated bank's quote over HTTP, the loan
opens on-chain with the borrower's WETH in the CollateralManager while the bank's funding desk is down, then the bank
reports the funding failed (a signed ``offer.funding_failed`` webhook): the accept is ``fund-refused`` and answers 409
``funding-failed`` naming the loan — and the API process's default job (``CREDITMESH_WORKERS=defaulter``) has the
operator cancel the loan on-chain: the WETH is back in the borrower's wallet and the loan reads ``cancelled``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.accepting import WETH, accept_with_permit, fund_outage, quoted_by_the_bank, sim_bank
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform, running_platform

pytestmark = pytest.mark.e2e

CHAIN = "ethereum-local"


@pytest.fixture(scope="module")
def platform(
    devnet_chains: dict[str, DeployedChain], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    """Its own platform: the default job runs in the API process, every half second."""
    settings = {"CREDITMESH_DEFAULTER_INTERVAL_SECONDS": "0.5", "CREDITMESH_SERVICING_LEASE_SECONDS": "3"}
    data_dir = tmp_path_factory.mktemp("unfunded")
    with running_platform(devnet_chains, data_dir, workers="defaulter", settings=settings) as running:
        yield running


def test_a_loan_the_lender_refuses_to_fund_is_cancelled_and_the_collateral_returned(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    chain = devnet_chains[CHAIN]
    weth, aggregator = chain.contract("WETH"), chain.contract("CreditAggregator")
    wallet, key, bank, offer_ref = quoted_by_the_bank(platform, chain)

    fund_outage(platform, 503)  # the loan opens; the funding instruction is not delivered yet
    try:
        accepted = accept_with_permit(platform, chain, wallet, key, bank["id"])
    finally:
        fund_outage(platform, None)
    assert accepted.status_code == 201, accepted.text
    loan_id = accepted.json()["id"]
    assert int(weth.functions.balanceOf(wallet.address).call()) == 0, "the collateral is in the CollateralManager"
    assert offer_ref in sim_bank(platform)["reserved"]
    report = {
        "webhook_url": f"{platform.api_url}/v1/providers/sim-bank/webhooks",
        "offer_ref": offer_ref,
        "type": "offer.funding_failed",
        "detail": "the disbursement account was frozen",
    }
    posted = httpx.post(f"{platform.lender_url}/control/lenders/sim-bank/offer-events", json=report, timeout=180)
    assert posted.status_code == 200, posted.text
    assert posted.json()["answer"]["effect"] == "funding-failed", posted.json()
    with platform.client(key) as client:
        loan = client.get(f"/v1/loans/{loan_id}").raise_for_status().json()
    loan_ref = int(loan["onchain_loan_id"])

    deadline = time.monotonic() + 90
    while int(weth.functions.balanceOf(wallet.address).call()) != WETH:
        assert time.monotonic() < deadline, "the default job never cancelled the unfunded loan"
        time.sleep(0.5)
    assert aggregator.functions.getLoan(loan_ref).call()[6] == 5  # LoanStatus.Cancelled
    with platform.client(key) as client:
        shown = client.get(f"/v1/loans/{loan_id}").raise_for_status().json()
    assert shown["status"] == "cancelled"
    assert shown["outstanding_principal"] == "0.00", "the borrower owes nothing"


def test_a_loan_its_lender_leaves_in_doubt_is_shown_unfunded_and_an_admin_cancels_it(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    """The bank refuses the funding instruction (409) but its own status of the offer stays ``reserved``, so the
    default job does not cancel the loan. The borrower sees it flagged ``unfunded`` with nothing owed or past due, an
    admin finds it by the flag, settles it with the bank and records it not funded: the operator cancels it now and
    the WETH is back. A second settlement, and a borrower's, are refused."""
    chain = devnet_chains[CHAIN]
    weth = chain.contract("WETH")
    wallet, key, bank, offer_ref = quoted_by_the_bank(platform, chain)

    fund_outage(platform, 409)  # refused for good: the accept is fund-refused at once
    try:
        accepted = accept_with_permit(platform, chain, wallet, key, bank["id"])
    finally:
        fund_outage(platform, None)
    assert accepted.status_code == 409, accepted.text
    assert accepted.json()["type"].endswith("/funding-failed")
    loan_id = accepted.json()["loan_id"]
    assert sim_bank(platform)["offers"][offer_ref] == "reserved", "the bank's own word: neither funded nor failed"

    with platform.client(key) as client:
        shown = client.get(f"/v1/loans/{loan_id}").raise_for_status().json()
        listed = client.get("/v1/loans").raise_for_status().json()["items"]
        refused = client.post(f"/v1/loans/{loan_id}/funding-settlement", json={"funded": False, "note": "mine"})
    assert (shown["status"], shown["flags"]) == ("active", ["unfunded"])
    assert (shown["live"], shown["days_past_due"]) == (None, None), "nothing is owed on a loan never paid out"
    assert "never funded" in shown["live_error"]
    assert [loan["days_past_due"] for loan in listed if loan["id"] == loan_id] == [None]
    assert refused.status_code == 403, refused.text

    manager, loan_ref = chain.contract("CollateralManager"), int(shown["onchain_loan_id"])
    deadline = time.monotonic() + 30  # the default job's rounds: it holds the loan's liquidation, asks the bank
    while not manager.functions.liquidationHeld(loan_ref).call():
        assert time.monotonic() < deadline, "the default job never held the unfunded loan's liquidation"
        time.sleep(0.5)
    time.sleep(1)  # the bank says reserved: the loan is left to an admin
    assert int(weth.functions.balanceOf(wallet.address).call()) == 0, "not cancelled while the lender is in doubt"
    with platform.client(platform.admin_key) as admin:
        flagged = admin.get("/v1/loans", params={"flag": "unfunded", "limit": 100}).raise_for_status().json()
        assert loan_id in [loan["id"] for loan in flagged["items"]]
        assert all("unfunded" in loan["flags"] for loan in flagged["items"])
        settled = admin.post(
            f"/v1/loans/{loan_id}/funding-settlement",
            json={"funded": False, "note": "sim-bank's desk confirmed by phone it never paid out"},
        )
        again = admin.post(f"/v1/loans/{loan_id}/funding-settlement", json={"funded": True, "note": "too late"})
    assert settled.status_code == 200, settled.text
    body = settled.json()
    assert (body["outcome"], body["confirmed"], body["loan"]["status"]) == ("not-funded", True, "cancelled")
    assert body["transaction_hash"].startswith("0x")
    assert int(weth.functions.balanceOf(wallet.address).call()) == WETH, "the collateral is back"
    assert (again.status_code, again.json()["type"].rsplit("/", 1)[-1]) == (409, "loan-not-unfunded"), again.text
