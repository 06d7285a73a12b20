"""The public API's edges as a client meets them over real HTTP, on a platform of its own (it registers lenders as an
admin) behind a reverse proxy at 127.0.0.2 (``CREDITMESH_TRUSTED_PROXIES``): the links it builds carry the proxy's
scheme, refusals are problems of fixed types, and what the document calls invalid is refused, not ignored."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_account import Account

from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform, running_platform

pytestmark = pytest.mark.e2e

PROXY, STRANGER = "127.0.0.2", "127.0.0.3"
PROBLEMS = "https://creditmesh.dev/problems/"


@pytest.fixture(scope="module")
def platform(
    devnet_chains: dict[str, DeployedChain], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    settings = {"CREDITMESH_TRUSTED_PROXIES": json.dumps([f"{PROXY}/32"])}
    with running_platform(devnet_chains, tmp_path_factory.mktemp("api-edges"), settings=settings) as running:
        for _ in range(2):  # two borrowers (each with an API key): the key list has a second page at limit=1
            _admin(running).post("/v1/borrowers", json={"wallet_address": Account.create().address})
        yield running


def _admin(platform: RunningPlatform, source: str = "127.0.0.1") -> httpx.Client:
    """An admin's client whose connections come from ``source`` (a loopback address: a proxy, or anyone)."""
    return httpx.Client(
        base_url=platform.api_url,
        headers={"X-API-Key": platform.admin_key},
        transport=httpx.HTTPTransport(local_address=source),
        timeout=60,
    )


def _problem(answer: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = answer.json()
    assert body["type"] == PROBLEMS + slug, body
    return body


def test_links_carry_the_trusted_proxys_scheme_and_nobody_elses(platform: RunningPlatform) -> None:
    https = {"X-Forwarded-Proto": "https"}
    with _admin(platform, PROXY) as proxy, _admin(platform, STRANGER) as stranger:
        page = proxy.get("/v1/api-keys", params={"limit": 1}, headers=https)
        assert page.status_code == 200, page.text
        assert page.json()["next"].startswith("https://"), page.json()
        redirected = proxy.get("/v1/loans/", headers=https)
        assert redirected.status_code == 307
        assert redirected.headers["location"].startswith("https://")
        # a client that is no proxy of ours chooses no scheme (nor address) of its own
        assert stranger.get("/v1/api-keys", params={"limit": 1}, headers=https).json()["next"].startswith("http://")
        assert stranger.get("/v1/loans/", headers=https).headers["location"].startswith("http://")


@pytest.mark.parametrize("address", ["0x" + "00" * 20, "0x" + "12" * 20])
def test_a_pool_at_an_address_with_no_contract_is_a_422_naming_it(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain], address: str
) -> None:
    chain = next(iter(devnet_chains))
    registration = {
        "provider_id": f"no-pool-{secrets.token_hex(4)}",
        "kind": "pool",
        "config": {"chain": chain, "asset": "USDC", "address": address},
    }
    with _admin(platform) as admin:
        body = _problem(admin.post("/v1/providers", json=registration), 422, "invalid-registration")
    assert body["title"] == "The provider registration is invalid"
    assert "no contract at" in body["detail"]
    assert address[2:].lower() in body["detail"].lower()


def test_each_refusal_has_a_fixed_type_and_title_and_its_detail_the_specifics(platform: RunningPlatform) -> None:
    wallet = Account.create().address
    with _admin(platform) as admin:
        loan = _problem(admin.get("/v1/loans/nope"), 404, "loan-not-found")
        events = _problem(admin.get("/v1/loans/nope/events"), 404, "loan-not-found")
        assert loan["title"] == events["title"] == "Loan not found"
        assert "nope" in events["detail"]
        cursor = _problem(
            admin.get("/v1/admin/sanctions-reviews", params={"cursor": "bm90LWEtY3Vyc29y"}), 400, "invalid-cursor"
        )
        assert cursor["title"] == "The page cursor is invalid"
        registered = admin.post("/v1/borrowers", json={"wallet_address": wallet})
        assert registered.status_code == 201, registered.text
        twice = [
            _problem(admin.post("/v1/borrowers", json={"wallet_address": w}), 409, "wallet-already-registered")
            for w in (wallet, wallet.lower())
        ]
        assert {problem["title"] for problem in twice} == {"The wallet is already a borrower's"}
        chain = _problem(admin.post("/v1/reconciliations", json={"chains": ["moon-local"]}), 422, "unknown-chain")
        assert (chain["title"], "moon-local" in chain["detail"]) == ("The chain is not served here", True)
        kinds = [
            _problem(
                admin.post("/v1/providers", json={"provider_id": f"odd-{kind}", "kind": kind, "config": {}}),
                422,
                "invalid-registration",
            )
            for kind in ("no-such-kind", "http")
        ]
        assert {problem["title"] for problem in kinds} == {"The provider registration is invalid"}
        assert "no-such-kind" in kinds[0]["detail"]
    borrower = {"X-API-Key": registered.json()["api_key"]}
    with httpx.Client(base_url=platform.api_url, headers=borrower, timeout=60) as client:
        refused = _problem(
            client.put("/v1/borrowers/me/webhook", json={"url": "http://169.254.169.254/"}), 422, "webhook-url-refused"
        )
        assert (refused["title"], refused["detail"].startswith("url: ")) == ("The webhook URL is refused", True)
        _problem(client.get("/v1/borrowers/me/webhook"), 404, "webhook-not-set")
    unauthorized = _problem(httpx.get(f"{platform.api_url}/v1/loans", timeout=60), 401, "unauthorized")
    assert unauthorized["title"] == "Unauthorized"
    assert "X-API-Key" in unauthorized["detail"]


@pytest.mark.parametrize(
    ("capabilities", "field"),
    [
        ({"assets": ["USDC"], "min_principal": "5000", "max_principal": "100"}, "capabilities.max_principal"),
        ({"assets": ["DOGE"]}, "capabilities.assets.0"),
        ({"assets": ["USDC"], "collateral_assets": ["WETH", "PEPE"]}, "capabilities.collateral_assets.1"),
        ({"assets": ["USDC"], "chains": ["moon-local"]}, "capabilities.chains.0"),
        ({"assets": ["USDC"], "min_term_days": 10**20}, "capabilities.min_term_days"),
        ({"assets": ["USDC"], "min_term_days": 90, "max_term_days": 30}, "capabilities.max_term_days"),
        ({"assets": ["USDC"], "jurisdictions": ["New York"]}, "capabilities.jurisdictions.0"),
        ({"assets": ["USDC"], "jurisdictions": ["US", "ZZ"]}, "capabilities.jurisdictions.1"),  # no country's code
    ],
)
def test_capabilities_no_request_can_meet_are_refused_naming_the_field(
    platform: RunningPlatform, capabilities: dict[str, Any], field: str
) -> None:
    registration = {
        "provider_id": f"odd-bank-{secrets.token_hex(4)}",
        "config": {"base_url": f"{platform.lender_url}/lenders/sim-bank", "secret": "s" * 32},
        "capabilities": capabilities,
    }
    with _admin(platform) as admin:
        refused = _problem(admin.post("/v1/providers", json=registration), 422, "validation-error")
        assert [error["field"] for error in refused["errors"]] == [field]
        listed = {provider["provider_id"] for provider in admin.get("/v1/providers").json()["providers"]}
    assert registration["provider_id"] not in listed


def test_a_query_parameter_the_operation_does_not_take_is_refused_not_ignored(platform: RunningPlatform) -> None:
    with _admin(platform) as admin:
        for path, params in (
            ("/v1/loans", {"flags": "unfunded"}),  # the filter is "flag": every loan was answered
            ("/v1/decisions", {"borrower": "xyz"}),  # the filter is "borrower_id"
            ("/healthz", {"verbose": "1"}),
        ):
            refused = _problem(admin.get(path, params=params), 422, "validation-error")
            assert [error["field"] for error in refused["errors"]] == [f"query.{next(iter(params))}"], path
        assert admin.get("/v1/loans", params={"flag": "unfunded", "limit": 5}).status_code == 200


def test_a_cursor_of_another_list_is_refused(platform: RunningPlatform) -> None:
    with _admin(platform) as admin:
        keys = admin.get("/v1/api-keys", params={"limit": 1}).json()
        cursor = httpx.URL(keys["next"]).params["cursor"]
        assert admin.get("/v1/api-keys", params={"limit": 1, "cursor": cursor}).status_code == 200
        for path in ("/v1/loans", "/v1/decisions", "/v1/credit-requests", "/v1/admin/sanctions-reviews"):
            refused = _problem(admin.get(path, params={"cursor": cursor}), 400, "invalid-cursor")
            assert "not a cursor of this list" in refused["detail"], path


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/loans/nope/funding-settlement", {"funded": "false", "note": "settled by phone"}, "funded"),
        ("/v1/loans/nope/funding-settlement", {"funded": 0, "note": "settled by phone"}, "funded"),
        ("/v1/loans/nope/funding-settlement", {"funded": False, "note": "by phone", "cancel": True}, "cancel"),
        ("/v1/admin/sanctions-reviews/nope/clear", {"note": "dates of birth differ", "verdict": "clear"}, "verdict"),
    ],
)
def test_a_settlement_or_verdict_takes_a_json_boolean_and_nothing_beside_its_fields(
    platform: RunningPlatform, path: str, body: dict[str, Any], field: str
) -> None:
    with _admin(platform) as admin:
        refused = _problem(admin.post(path, json=body), 422, "validation-error")
        assert [error["field"] for error in refused["errors"]] == [field]
        well_formed = {name: value for name, value in body.items() if name in {"funded", "note"}} | (
            {"funded": False} if "funded" in body else {}
        )
        assert admin.post(path, json=well_formed).status_code == 404  # the same body, well formed: no such loan


def test_head_is_answered_wherever_get_is_with_its_headers_and_no_body(platform: RunningPlatform) -> None:
    with _admin(platform) as admin:
        for path in ("/healthz", "/v1/loans", "/v1/platform", "/v1/api-keys?limit=1"):
            got, head = admin.get(path), admin.head(path)
            assert (head.status_code, got.status_code) == (200, 200), path
            assert head.content == b"", path
            assert head.headers["content-type"] == got.headers["content-type"], path
        assert admin.head("/v1/loans/nope").status_code == 404
        assert admin.head("/v1/quotes/some-quote/accept").status_code == 405  # POST only: no GET, no HEAD


def test_a_request_refused_by_validation_does_not_use_its_idempotency_key_up(platform: RunningPlatform) -> None:
    key = {"Idempotency-Key": secrets.token_hex(16)}
    wallet = Account.create().address
    with _admin(platform) as admin:
        _problem(
            admin.post("/v1/borrowers", json={"wallet_address": wallet[:-1]}, headers=key), 422, "validation-error"
        )
        corrected = admin.post("/v1/borrowers", json={"wallet_address": wallet}, headers=key)
        assert corrected.status_code == 201, corrected.text  # not 422 idempotency-key-reused
        replayed = admin.post("/v1/borrowers", json={"wallet_address": wallet}, headers=key)
        assert (replayed.json(), replayed.headers["idempotent-replayed"]) == (corrected.json(), "true")
