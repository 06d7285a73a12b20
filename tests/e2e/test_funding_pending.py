"""A loan whose funding instruction is not delivered, end to end over HTTP: the simulated bank's funding desk answers
503 while the borrower accepts its quote, so the loan opens on-chain with the borrower's WETH locked and the bank not
told to fund it. The accept answers 201 with the loan flagged ``funding_pending`` (the borrower can tell it was not
paid out yet), it reads with no live figures or days past due, an admin lists it by the flag, and the API process's
default job (``CREDITMESH_WORKERS=defaulter``) holds its liquidation on-chain. Then either the desk comes back —
recovery delivers the instruction, the bank funds the loan, the flag goes and the hold is released — or it stays
down past the funding window (``CREDITMESH_FUNDING_WINDOW_SECONDS``, 30 s here): the loan becomes ``unfunded``, its
hold stays, and an admin settles it not funded, which cancels it and returns the WETH."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from tests.support.accepting import WETH, accept_with_permit, fund_outage, quoted_by_the_bank, sim_bank
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform, running_platform

pytestmark = pytest.mark.e2e

CHAIN = "ethereum-local"
WINDOW = 30


@pytest.fixture(scope="module")
def platform(
    devnet_chains: dict[str, DeployedChain], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    """Its own platform: the default job every half second, accepts recovered within seconds, a 30 s window."""
    settings = {
        "CREDITMESH_DEFAULTER_INTERVAL_SECONDS": "0.5",
        "CREDITMESH_SERVICING_LEASE_SECONDS": "3",
        "CREDITMESH_ACCEPT_LEASE_SECONDS": "2",
        "CREDITMESH_FUNDING_WINDOW_SECONDS": str(WINDOW),
    }
    data_dir = tmp_path_factory.mktemp("funding-pending")
    with running_platform(devnet_chains, data_dir, workers="defaulter", settings=settings) as running:
        yield running


def _until(what: str, check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def _accepted_while_the_desk_is_down(
    platform: RunningPlatform, chain: DeployedChain
) -> tuple[LocalAccount, str, str, dict[str, Any]]:
    """A new borrower holding 1 WETH accepts the bank's quote while its funding desk answers 503 (left so): its
    wallet, API key, the bank's reference of the offer and the accept's answer (the loan)."""
    wallet, key, bank, offer_ref = quoted_by_the_bank(platform, chain)
    fund_outage(platform, 503)
    accepted = accept_with_permit(platform, chain, wallet, key, bank["id"])
    assert accepted.status_code == 201, accepted.text
    assert int(chain.contract("WETH").functions.balanceOf(wallet.address).call()) == 0, "locked on-chain"
    return wallet, key, offer_ref, accepted.json()


def _loan(platform: RunningPlatform, key: str, loan_id: str) -> dict[str, Any]:
    with platform.client(key) as client:
        loan: dict[str, Any] = client.get(f"/v1/loans/{loan_id}").raise_for_status().json()
    return loan


def test_a_loan_whose_funding_is_not_delivered_is_flagged_and_held_until_the_lender_funds_it(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    chain = devnet_chains[CHAIN]
    manager = chain.contract("CollateralManager")
    try:
        wallet, key, offer_ref, accepted = _accepted_while_the_desk_is_down(platform, chain)
        loan_id, loan_ref = accepted["id"], int(accepted["onchain_loan_id"])
        assert accepted["flags"] == ["funding_pending"], "the borrower can tell it was not paid out yet"
        assert sim_bank(platform)["offers"][offer_ref] == "reserved", "the bank was not told to fund it"
        shown = _loan(platform, key, loan_id)
        assert (shown["flags"], shown["live"], shown["days_past_due"]) == (["funding_pending"], None, None)
        assert "not confirmed funding" in shown["live_error"]
        with platform.client(platform.admin_key) as admin:
            listed = admin.get("/v1/loans", params={"flag": "funding_pending"}).raise_for_status().json()["items"]
            early = admin.post(f"/v1/loans/{loan_id}/funding-settlement", json={"funded": False, "note": "too soon"})
        assert [loan["id"] for loan in listed] == [loan_id]
        assert (early.status_code, early.json()["type"].rsplit("/", 1)[-1]) == (409, "loan-not-unfunded"), early.text
        _until(
            "the default job never held the loan's liquidation", manager.functions.liquidationHeld(loan_ref).call, 30
        )
    finally:
        fund_outage(platform, None)  # the desk is back: recovery delivers the funding instruction

    _until("recovery never had the bank fund the loan", lambda: sim_bank(platform)["offers"][offer_ref] == "funded", 60)
    _until("the loan never read funded", lambda: _loan(platform, key, loan_id)["flags"] == [], 30)
    _until("the hold was never released", lambda: not manager.functions.liquidationHeld(loan_ref).call(), 30)
    shown = _loan(platform, key, loan_id)
    assert shown["live"] is not None, "serviced now"
    assert shown["days_past_due"] == 0
    assert int(chain.contract("WETH").functions.balanceOf(wallet.address).call()) == 0, "still the loan's"


@pytest.mark.slow  # waits out the 30 s window; the default run holds the rule in tests/unit/test_accept_recovery.py
def test_a_loan_whose_funding_is_not_delivered_within_the_window_is_unfunded_and_settled_by_an_admin(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    chain = devnet_chains[CHAIN]
    weth, manager = chain.contract("WETH"), chain.contract("CollateralManager")
    try:
        wallet, key, offer_ref, accepted = _accepted_while_the_desk_is_down(platform, chain)
        loan_id, loan_ref = accepted["id"], int(accepted["onchain_loan_id"])
        assert accepted["flags"] == ["funding_pending"]
        _until(
            "the default job never held the loan's liquidation", manager.functions.liquidationHeld(loan_ref).call, 30
        )
        _until(
            "the loan never became unfunded past the funding window",
            lambda: _loan(platform, key, loan_id)["flags"] == ["unfunded"],
            WINDOW + 60,
        )
        assert manager.functions.liquidationHeld(loan_ref).call(), "still held: the bank says reserved"
        assert sim_bank(platform)["offers"][offer_ref] == "reserved"
        with platform.client(platform.admin_key) as admin:
            flagged = admin.get("/v1/loans", params={"flag": "unfunded"}).raise_for_status().json()["items"]
            settled = admin.post(
                f"/v1/loans/{loan_id}/funding-settlement",
                json={"funded": False, "note": "sim-bank's desk was down for the whole window; it never paid out"},
            )
    finally:
        fund_outage(platform, None)
    assert loan_id in [loan["id"] for loan in flagged]
    assert settled.status_code == 200, settled.text
    assert (settled.json()["outcome"], settled.json()["loan"]["status"]) == ("not-funded", "cancelled")
    assert int(weth.functions.balanceOf(wallet.address).call()) == WETH, "the collateral is back"
