"""Inputs that once crashed the API with a plain-text 500 (issue 17), and inputs its document calls invalid that were
once answered as if valid (a number read as a date): each is now a 4xx problem+json naming what is wrong, over real
HTTP against the platform's processes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from eth_account import Account

from api.demo import passport_kyc
from tests.support.platform import RunningPlatform

pytestmark = pytest.mark.e2e

BORROWER = Account.create()  # of its own: the platform is shared (tests/e2e/conftest.py); it signs nothing
REQUEST: dict[str, Any] = {
    "amount": "1500.00",
    "asset": "USDC",
    "term_days": 30,
    "collateral": {"asset": "WETH", "amount": "1.0"},
}


@pytest.fixture(scope="module")
def platform(shared_platform: RunningPlatform) -> RunningPlatform:
    """The e2e package's platform with default settings (``tests/e2e/conftest.py``)."""
    return shared_platform


@pytest.fixture(scope="module")
def borrower_key(platform: RunningPlatform) -> str:
    return platform.onboard(BORROWER.address)


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def _fields(problem: dict[str, Any]) -> list[str]:
    return [error["field"] for error in problem["errors"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "1e999999999"}, "amount"),  # decimal.Overflow in the asset's scaling
        ({"amount": "1e-999999999"}, "amount"),
        ({"amount": "١٥٠٠"}, "amount"),  # Arabic-Indic digits: Decimal reads them as 1500
        ({"amount": "１５００"}, "amount"),  # fullwidth digits
        ({"amount": "99999999999999999999999999"}, "amount"),  # past uint96 base units of USDC
        ({"amount": "1500.0000001"}, "amount"),  # USDC has 6 decimals
        ({"collateral": {"asset": "WETH", "amount": "79228162514.264337593543950336"}}, "collateral.amount"),
        ({"collateral": {"asset": "WETH", "amount": "1.0000000000000000001"}}, "collateral.amount"),
        ({"term_days": 0}, "term_days"),
        ({"term_days": True}, "term_days"),  # was read as 1: quotes for a one-day loan
        ({"term_days": "30"}, "term_days"),
    ],
)
def test_amounts_and_terms_out_of_range_are_refused_naming_the_field(
    platform: RunningPlatform, borrower_key: str, change: dict[str, Any], field: str
) -> None:
    with platform.client(borrower_key) as client:
        response = client.post("/v1/credit-requests", json=REQUEST | change)
    assert field in _fields(_problem(response, 422))


def test_the_largest_collateral_an_amount_may_be_is_no_500(platform: RunningPlatform, borrower_key: str) -> None:
    """2^96 - 1 base units of USDC as collateral: its limit to the millionth needed 29 digits, and the risk policy's
    ``quantize`` raised InvalidOperation (found by ``make fuzz-api``)."""
    collateral = {"asset": "USDC", "amount": "79228162514264337593543.950335"}
    with platform.client(borrower_key) as client:
        response = client.post("/v1/credit-requests", json=REQUEST | {"collateral": collateral})
    assert response.status_code == 201, response.text
    # no_offers: every chain's collateral terms refuse it (USDC is no collateral there), each provider named
    assert response.json()["status"] in ("quoted", "declined", "no_offers")


def test_a_body_that_is_not_utf8_is_answered_like_broken_json(platform: RunningPlatform, borrower_key: str) -> None:
    headers = {"Content-Type": "application/json"}
    with platform.client(borrower_key) as client:
        not_utf8 = client.post("/v1/credit-requests", content=b'{"amount": "\xff\xfe"}', headers=headers)
        broken = client.post("/v1/credit-requests", content=b'{"amount": ', headers=headers)
    assert _problem(not_utf8, 422)["type"] == _problem(broken, 422)["type"]


@pytest.mark.parametrize(
    ("signature", "why"),
    [
        ("0x" + "00" * 65, "recovers no signer"),  # the right length, but no public key recovers from it
        ("0x" + "1b" * 66, "66 bytes"),  # longer than a wallet key's signature, from a wallet that is no contract
        ("0x" + "1b" * 64, "String should have at least"),  # too short, refused by the schema
        ("0x" + "zz" * 65, "String should match pattern"),
    ],
)
def test_malformed_acceptance_signatures_are_refused(
    platform: RunningPlatform, borrower_key: str, signature: str, why: str
) -> None:
    with platform.client(borrower_key) as client:
        created = client.post("/v1/credit-requests", json=REQUEST)
        assert created.status_code == 201, created.text
        quote = created.json()["quotes"][0]
        response = client.post(f"/v1/quotes/{quote['id']}/accept", json={"signature": signature})
        problem = _problem(response, 422)
        assert "signature" in _fields(problem)
        assert why in problem["detail"]
        # the quote stays open: nothing was locked or relayed
        assert client.get(f"/v1/quotes/{quote['id']}").json()["status"] == "offered"


def test_the_zero_address_is_no_wallet(platform: RunningPlatform) -> None:
    with platform.client(platform.admin_key) as client:
        response = client.post("/v1/borrowers", json={"wallet_address": "0x" + "0" * 40})
    assert "wallet_address" in _fields(_problem(response, 422))


@pytest.mark.parametrize("borrower_id", ["00000000-0000-0000-0000-000000000000", "not-an-id"])
def test_erasing_the_identity_of_a_borrower_that_does_not_exist_is_404(
    platform: RunningPlatform, borrower_id: str
) -> None:
    with platform.client(platform.admin_key) as client:
        response = client.delete(f"/v1/borrowers/{borrower_id}/identity")
    assert borrower_id in _problem(response, 404)["detail"]


NO_DNS_NAME = "https://" + "0" * 2000  # a 2,000-character label: the resolver's IDNA codec raised UnicodeError (a 500)


def test_a_webhook_host_no_dns_name_can_be_is_refused_naming_it(platform: RunningPlatform, borrower_key: str) -> None:
    """A lender's loan-events webhook is checked the same way (``tests/integration/providers/test_api_registration.py``,
    on a lender registered through the API)."""
    with platform.client(borrower_key) as client:
        response = client.put("/v1/borrowers/me/webhook", json={"url": NO_DNS_NAME})
    assert "no DNS name can be" in _problem(response, 422)["detail"]


@pytest.mark.parametrize("url", [NO_DNS_NAME, "http://169.254.169.254/events"], ids=["no-dns-name", "link-local"])
def test_an_unknown_providers_webhook_is_404_before_its_url_is_looked_at(platform: RunningPlatform, url: str) -> None:
    with platform.client(platform.admin_key) as client:
        response = client.put("/v1/providers/no-such-provider/loan-events-webhook", json={"url": url})
    assert "no-such-provider" in _problem(response, 404)["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/api-keys", {"role": "auditor", "label": "x", "expires_at": 0}, "auditor.expires_at"),  # 1970
        ("POST", "/v1/api-keys", {"role": "auditor", "label": "x", "expires_at": "1700000000"}, "auditor.expires_at"),
        ("GET", "/v1/decisions?decided_before=0.5", None, "query.decided_before"),
        ("POST", "/v1/reconciliations", {"since_last": 0}, "since_last"),  # was false: a run started
    ],
)
def test_a_number_where_the_document_says_a_date_or_a_boolean_is_refused(
    platform: RunningPlatform, method: str, path: str, body: dict[str, Any] | None, field: str
) -> None:
    with platform.client(platform.admin_key) as client:
        response = client.request(method, path, json=body)
    assert field in _fields(_problem(response, 422))


@pytest.mark.parametrize(("field", "value"), [("fail_max", True), ("rate_per_second", "1.5")])  # were 1 and 1.5
def test_a_boolean_or_a_string_in_a_lenders_resilience_policy_is_refused(
    platform: RunningPlatform, field: str, value: object
) -> None:
    body = {"provider_id": "lax-bank", "config": {}, "resilience": {field: value}}
    with platform.client(platform.admin_key) as client:
        response = client.post("/v1/providers", json=body)
    assert f"resilience.{field}" in _fields(_problem(response, 422))


@pytest.mark.parametrize("query", ["borrower_id=&borrower_id=b-1", "limit=5&limit=6&kind=risk"])
def test_a_query_parameter_given_twice_is_refused_naming_it(platform: RunningPlatform, query: str) -> None:
    """No query parameter is an array: FastAPI kept the last value, and the first (even an invalid one) was ignored
    (found by ``make fuzz-api``)."""
    with platform.client(platform.admin_key) as client:
        response = client.get(f"/v1/decisions?{query}")
        single = client.get("/v1/decisions?borrower_id=b-1&limit=5")
    name = query.partition("=")[0]
    assert _fields(_problem(response, 422)) == [f"query.{name}"]
    assert single.status_code == 200


def test_a_documents_expiry_given_as_a_number_is_refused(platform: RunningPlatform, borrower_key: str) -> None:
    body = passport_kyc("US-NY")
    body["document"]["expires_on"] = 0  # was read as 1970-01-01
    with platform.client(borrower_key) as client:
        response = client.post("/v1/borrowers/me/kyc", json=body)
    problem = _problem(response, 422)
    assert "document.expires_on" in _fields(problem)
    assert "RFC 3339 date (YYYY-MM-DD)" in problem["detail"]
