"""A refused credit request, over real HTTP against the platform's processes (ECOA / Regulation B, 12 CFR 1002.9):

- a request answered with ``risk.approved`` false — declined by the scoring, or ``no_offers`` — carries the
  adverse-action notice 1002.9(a)(2) requires (``risk.adverse_action_notice``): the action taken, the creditor's name
  and address, the lenders considered, the specific reasons, and the ECOA statement with the agency's name and
  address; kept with the request (GET answers it again). Before, only the reason codes were given;
- a request refused before it is scored — a borrower with no identity on file (403) or one past a velocity limit
  (429) — leaves a ``credit-request`` decision record denying it, listed by ``GET /v1/decisions``. Before, neither
  left any trace, so an examiner could not list every refusal;
- a credit denial never written as a request — a screening that allows no product (403 ``compliance-denied``) or a
  velocity stop about the applicant (429 ``velocity-limit``, R50) — carries the notice in its problem
  (``adverse_action_notice``), its reasons exactly the problem's; and a ``no_offers`` notice gives each lender its own
  reasons (1002.9(g)) and the right to a statement of reasons (1002.9(a)(2)(ii)). Before, neither problem had a
  notice, and a lender was named only with its outcome word."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from api.notice_schemas import AdverseActionNoticeOut
from compliance.adverse_action import ECOA_STATEMENT, FTC, LOCAL_CREDITOR
from contracts.deploy import pool_key
from providers.sim.fleet import DEFAULT_FLEET
from tests.e2e.test_screening_and_scoring import REQUEST
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform

pytestmark = pytest.mark.e2e

#: the simulated bank the platform asks (``tests.support.platform``): its made-up creditor is `make run`'s
SIM_BANK = DEFAULT_FLEET[0]

#: the facts 1002.9(b)(1)'s statement must carry
ECOA_BASES = (
    "race",
    "color",
    "religion",
    "national origin",
    "sex",
    "marital status",
    "age",
    "public assistance",
    "Consumer Credit Protection Act",
)


@pytest.fixture(scope="module")
def platform(shared_platform: RunningPlatform) -> RunningPlatform:
    """The e2e package's platform with default settings (``tests/e2e/conftest.py``): the local notice parties."""
    return shared_platform


def _post(platform: RunningPlatform, key: str, **changes: Any) -> dict[str, Any]:
    with platform.client(key) as client:
        response = client.post("/v1/credit-requests", json=REQUEST | changes)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _notice(platform: RunningPlatform, key: str, body: dict[str, Any]) -> dict[str, Any]:
    """The answer's notice, typed as the OpenAPI document has it, and the same when the request is read again."""
    risk = body["risk"]
    assert risk["approved"] is False
    notice: dict[str, Any] = risk["adverse_action_notice"]
    with platform.client(key) as client:
        again = client.get(f"/v1/credit-requests/{body['id']}").json()
    assert again["risk"]["adverse_action_notice"] == notice
    assert notice["reasons"] == risk["reasons"]
    _parts(notice)
    return notice


def _parts(notice: dict[str, Any]) -> None:
    """What every notice carries, wherever it is given: the parties, the ECOA statement, the terms asked, one to four
    reasons, and the right to a statement of reasons with whom to ask."""
    AdverseActionNoticeOut.model_validate(notice)
    assert notice["action_taken"] == "credit denied"
    assert notice["creditor"] == {
        "name": LOCAL_CREDITOR.name,
        "address": LOCAL_CREDITOR.address,
        "telephone": LOCAL_CREDITOR.telephone,  # whom to call for the statement of reasons (1002.9(a)(2)(ii))
    }
    assert notice["agency"] == {"name": FTC.name, "address": FTC.address}
    assert notice["ecoa_notice"] == ECOA_STATEMENT
    assert all(basis in ECOA_STATEMENT for basis in ECOA_BASES)
    assert 1 <= len(notice["reasons"]) <= 4
    assert "1500.00 USDC for 30 days was denied" in notice["statement"]
    right = notice["right_to_reasons"]
    for part in ("within 60 days", "within 30 days", LOCAL_CREDITOR.name, LOCAL_CREDITOR.address, "or calling"):
        assert part in right


def _refusals(platform: RunningPlatform, borrower_id: str) -> list[dict[str, Any]]:
    """The credit-request records denying the borrower's requests, as an examiner lists them."""
    with platform.client(platform.admin_key) as admin:
        response = admin.get(
            "/v1/decisions",
            params={"borrower_id": borrower_id, "kind": "credit-request", "outcome": "deny", "limit": 200},
        )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_declined_request_carries_the_notice_for_the_platform_alone(platform: RunningPlatform) -> None:
    key = platform.onboard(Account.create().address, profile={})

    body = _post(platform, key)

    assert body["status"] == "declined"
    notice = _notice(platform, key, body)
    assert "R20" in {reason["code"] for reason in notice["reasons"]}
    assert notice["lenders"] == []  # the scoring declined it: no lender was asked
    assert "gives this notice for itself;" in notice["statement"]


def test_a_no_offers_request_carries_the_notice_naming_every_lender_considered(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    key = platform.onboard(Account.create().address)
    quoted = _post(platform, key)
    assert quoted["status"] == "quoted"
    assert "adverse_action_notice" not in quoted["risk"]  # only a request not approved has one

    # USDC is no collateral on any chain: every chain's terms refuse it, and no lender's offer survives (R45)
    body = _post(platform, key, collateral={"asset": "USDC", "amount": "3000.00"})

    assert body["status"] == "no_offers"
    notice = _notice(platform, key, body)
    assert "R45" in {reason["code"] for reason in notice["reasons"]}
    outcomes = {(o["provider_id"], o["outcome"]) for o in body["provider_outcomes"]}
    assert {(lender["provider_id"], lender["outcome"]) for lender in notice["lenders"]} == outcomes
    assert "sim-bank" in {lender["provider_id"] for lender in notice["lenders"]}
    assert "the lenders named" in notice["statement"]
    # each lender with its own principal reasons (1002.9(g)), not the platform's first case of each code: every pool
    # lends on one chain, and its reason names that chain (the notice's own reasons name only one of them)
    for lender in notice["lenders"]:
        assert 1 <= len(lender["reasons"]) <= 4, lender
        assert all(reason["code"] == "R45" for reason in lender["reasons"]), lender
        if lender["provider_id"].startswith("pool:"):
            chain = lender["provider_id"].split(":")[1]
            assert lender["reasons"][0]["text"].endswith(f"USDC is not accepted as collateral on {chain}"), lender
    own = {lender["reasons"][0]["text"] for lender in notice["lenders"]}
    assert len(own) >= 3 > len(notice["reasons"])
    # and who each is (1002.9(g)): the simulated bank by the made-up legal name and address it registers with, each
    # pool (no legal person) by its contract and chain
    lenders = {lender["provider_id"]: lender for lender in notice["lenders"]}
    bank = lenders["sim-bank"]
    assert (bank["identity"], bank["legal_name"], bank["address"]) == (
        "registered",
        SIM_BANK.legal_name,
        SIM_BANK.address,
    )
    pools = [lender for lender in notice["lenders"] if lender["provider_id"].startswith("pool:")]
    assert pools
    for pool in pools:
        _, chain, asset = pool["provider_id"].split(":")
        contract = str(devnet_chains[chain].record.address(pool_key(asset)))
        assert (pool["identity"], pool["legal_name"]) == ("pool", None), pool
        assert pool["pool"] == {"chain": chain, "contract": contract}, pool
        assert f"{contract} on {chain}" in pool["identity_note"]


def test_refusals_before_scoring_leave_a_record_an_examiner_lists(platform: RunningPlatform) -> None:
    """A borrower registered without KYC: each request is 403 (its velocity counted first), until the 26th is past
    the platform's limit of 25 an hour (``tests.support.platform``) and is 429: each 403 left a record, and the
    velocity stop one, however often it is met again in the window."""
    with platform.client(platform.admin_key) as admin:
        registered = admin.post(
            "/v1/borrowers", json={"wallet_address": Account.create().address, "jurisdiction": "US-FL"}
        )
    key, borrower_id = registered.json()["api_key"], registered.json()["id"]

    with platform.client(key) as client:
        statuses = [client.post("/v1/credit-requests", json=REQUEST).status_code for _ in range(26)]
        stopped = client.post("/v1/credit-requests", json=REQUEST)

    assert statuses == [403] * 25 + [429]
    assert stopped.status_code == 429
    refusals = _refusals(platform, borrower_id)
    codes = [reason["code"] for refusal in refusals for reason in refusal["reasons"]]
    assert codes.count("kyc.not-approved") == 25
    assert codes.count("R50") == 1, "a velocity stop is recorded once in its window, not once per refused request"
    assert len(refusals) == 26
    assert all(refusal["subject_ref"] == borrower_id and refusal["request_id"] is None for refusal in refusals)
    velocity = next(refusal for refusal in refusals if refusal["reasons"][0]["code"] == "R50")
    assert (
        velocity["reasons"][0]["message"] == "Too many credit applications in a short period (borrower: 26, limit 25)"
    )
    assert velocity["versions"] == {"velocity": "borrower<=25/3600s"}


def test_a_request_the_screening_denies_carries_the_notice_in_its_problem(platform: RunningPlatform) -> None:
    """5.00 USDC is below every product's smallest amount: the screening allows no product and the request is 403
    ``compliance-denied`` — a credit denial no request is written for. Its problem carries the notice, given by the
    platform alone, its reasons exactly the 403's (a screening hit is told no more than the 403 tells it)."""
    key = platform.onboard(Account.create().address)
    with platform.client(key) as client:
        refused = client.post("/v1/credit-requests", json=REQUEST | {"amount": "5.00"})

    assert refused.status_code == 403, refused.text
    problem = refused.json()
    assert problem["type"].endswith("/compliance-denied")
    notice = problem["adverse_action_notice"]
    _parts(notice | {"statement": notice["statement"].replace("5.00 USDC", "1500.00 USDC")})
    assert "Your request for credit of 5.00 USDC for 30 days was denied." in notice["statement"]
    assert "gives this notice for itself;" in notice["statement"]
    assert notice["lenders"] == []  # no lender was asked
    assert [(r["code"], r["text"]) for r in notice["reasons"]] == [
        (r["code"], r["message"]) for r in problem["reasons"]
    ]
    assert "amount.out-of-limits" in {reason["code"] for reason in notice["reasons"]}


def test_a_velocity_stop_carries_the_notice_in_its_problem(platform: RunningPlatform) -> None:
    """The borrower's 26th request in the hour is past the platform's limit of 25 (R50, about the applicant): its 429
    carries the notice for the platform alone, its reason the 429's. The 403s before it (no identity on file: an
    incomplete application, whose answer says what is missing) carry none."""
    with platform.client(platform.admin_key) as admin:
        registered = admin.post(
            "/v1/borrowers", json={"wallet_address": Account.create().address, "jurisdiction": "US-FL"}
        )
    key = registered.json()["api_key"]

    with platform.client(key) as client:
        incomplete = [client.post("/v1/credit-requests", json=REQUEST) for _ in range(25)]
        stopped = client.post("/v1/credit-requests", json=REQUEST)

    assert [response.status_code for response in incomplete] == [403] * 25
    assert all("adverse_action_notice" not in response.json() for response in incomplete)
    assert stopped.status_code == 429, stopped.text
    problem = stopped.json()
    assert (problem["rule"], problem["reason"]) == ("borrower", "R50")
    notice = problem["adverse_action_notice"]
    _parts(notice)
    assert notice["lenders"] == []
    assert notice["reasons"] == [
        {"code": "R50", "text": "Too many credit applications in a short period (borrower: 26, limit 25)"}
    ]
