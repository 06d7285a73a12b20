"""A refused credit request, over real HTTP against the platform's processes (ECOA / Regulation B, 12 CFR 1002.9):
a request refused before it is scored — a borrower with no identity on file (403) or one past a velocity limit (429)
— leaves a ``credit-request`` decision record denying it, listed by ``GET /v1/decisions``. Before, neither left any
trace, so an examiner could not list every refusal."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from tests.support.platform import RunningPlatform

pytestmark = pytest.mark.e2e

REQUEST: dict[str, Any] = {
    "amount": "1500.00",
    "asset": "USDC",
    "term_days": 30,
    "purpose": "business",
    "collateral": {"asset": "WETH", "amount": "2.0"},
}


@pytest.fixture(scope="module")
def platform(shared_platform: RunningPlatform) -> RunningPlatform:
    """The e2e package's platform with default settings (``tests/e2e/conftest.py``)."""
    return shared_platform


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


def test_refusals_before_scoring_leave_a_record_an_examiner_lists(platform: RunningPlatform) -> None:
    """A borrower registered without KYC: each request is 403 (its velocity counted first), until the 26th is past
    the platform's limit of 25 an hour (``tests.support.platform``) and is 429: each left a record."""
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
    assert codes.count("R50") == 2
    assert len(refusals) == 27
    assert all(refusal["subject_ref"] == borrower_id and refusal["request_id"] is None for refusal in refusals)
    velocity = next(refusal for refusal in refusals if refusal["reasons"][0]["code"] == "R50")
    assert (
        velocity["reasons"][0]["message"] == "Too many credit applications in a short period (borrower: 26, limit 25)"
    )
    assert velocity["versions"] == {"velocity": "borrower<=25/3600s"}
