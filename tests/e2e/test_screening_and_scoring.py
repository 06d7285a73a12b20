"""Compliance and risk on the request path, over HTTP: sanctions, KYC, declines with reasons, grades that follow
the profile, usury caps dropping offers, velocity limits."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from eth_account import Account
from eth_utils.address import to_checksum_address

from api.demo import kyc_verdict, passport_kyc
from compliance.kyc import SIGNATURE_HEADER, sign_webhook
from tests.support.platform import COVERED_SERVICEMEMBER, GOOD_PROFILE, KYC_SECRET, RunningPlatform

pytestmark = pytest.mark.e2e

LAZARUS_WALLET = "0x098b716b8aaf21512996dc57eb0615e2383e2f96"  # OFAC SDN, DPRK3 program
REQUEST: dict[str, Any] = {
    "amount": "1500.00",
    "asset": "USDC",
    "term_days": 30,
    "purpose": "business",
    "collateral": {"asset": "WETH", "amount": "2.0"},
}
MIDDLING = {
    "checking": "100",
    "savings": "300",
    "credit_history": "paid_duly_so_far",
    "employment_years": "3",
    "monthly_disposable_income": "2500",
    "property": "car_or_other",
    "other_installment_plans": "none",
    "housing": "rent",
}


@pytest.fixture(scope="module")
def platform(shared_platform: RunningPlatform) -> RunningPlatform:
    """The e2e package's platform with default settings (``tests/e2e/conftest.py``)."""
    return shared_platform


def _post(platform: RunningPlatform, key: str, **changes: Any) -> Any:
    with platform.client(key) as client:
        return client.post("/v1/credit-requests", json=REQUEST | changes)


def _decisions(platform: RunningPlatform, subject: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(f"sqlite:///{platform.data_dir / 'creditmesh.db'}")
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("select kind, outcome from compliance_decisions where subject_ref = :s"), {"s": subject}
        ).all()
    engine.dispose()
    return [(str(kind), str(outcome)) for kind, outcome in rows]


def test_a_sanctioned_wallet_is_refused_and_the_decision_recorded(platform: RunningPlatform) -> None:
    # Registration stores the checksummed address; screening matches it against the list's lower-case keys
    # (every letter case is covered by the compliance unit tests).
    key = platform.onboard(to_checksum_address(LAZARUS_WALLET))
    with platform.client(key) as client:
        before = client.get("/v1/borrowers/me").json()["sanctions_screening"]
    response = _post(platform, key)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "sanctions.address" in {reason["code"] for reason in response.json()["reasons"]}
    with platform.client(key) as client:
        me = client.get("/v1/borrowers/me").json()
    assert ("credit-request", "deny") in _decisions(platform, me["id"])
    # no review is opened for a listed wallet: the borrower is told blocked, and why, before and after a request
    for screening in (before, me["sanctions_screening"]):
        assert (screening["status"], screening["reviews"]) == ("blocked", [])
        assert "wallet is on the OFAC sanctions list (DPRK3)" in screening["reason"]


def test_a_borrower_reads_not_yet_screened_until_a_credit_request_screens_it(platform: RunningPlatform) -> None:
    key = platform.onboard(Account.create().address)
    with platform.client(key) as client:
        unscreened = client.get("/v1/borrowers/me").json()["sanctions_screening"]
        assert (unscreened["status"], unscreened["reviews"]) == ("not-yet-screened", [])
        assert _post(platform, key).status_code == 201
        screening = client.get("/v1/borrowers/me").json()["sanctions_screening"]
    assert screening == {"status": "clear", "reason": None, "reviews": []}


def test_an_identity_verified_again_reads_not_yet_screened_until_a_credit_request_screens_it(
    platform: RunningPlatform,
) -> None:
    """Re-verified with another name (POST /me/kyc), the borrower read "clear" though no screening had seen the new
    name; a screening decision now keeps the identity it screened."""
    key = platform.onboard(Account.create().address, kyc=passport_kyc("US-FL", first="Ada", last="Lovelace"))
    assert _post(platform, key).status_code == 201
    with platform.client(key) as client:
        assert client.get("/v1/borrowers/me").json()["sanctions_screening"]["status"] == "clear"
        submitted = client.post("/v1/borrowers/me/kyc", json=passport_kyc("US-FL", first="Ada", last="Byron"))
        assert submitted.status_code == 200, submitted.text
        assert kyc_verdict(client, key)["state"] == "approved"
        renamed = client.get("/v1/borrowers/me").json()["sanctions_screening"]
        assert (renamed["status"], renamed["reviews"]) == ("not-yet-screened", [])
        assert "verified last" in renamed["reason"]
    assert _post(platform, key).status_code == 201
    with platform.client(key) as client:
        assert client.get("/v1/borrowers/me").json()["sanctions_screening"]["status"] == "clear"


def test_without_kyc_the_request_is_refused(platform: RunningPlatform) -> None:
    with platform.client(platform.admin_key) as admin:
        key = admin.post("/v1/borrowers", json={"wallet_address": Account.create().address, "jurisdiction": "US-FL"})
    response = _post(platform, key.json()["api_key"])
    assert response.status_code == 403, response.text
    assert "kyc.not-approved" in {reason["code"] for reason in response.json()["reasons"]}


def test_an_expired_document_fails_kyc_with_its_reason(platform: RunningPlatform) -> None:
    with platform.client(platform.admin_key) as admin:
        key = admin.post("/v1/borrowers", json={"wallet_address": Account.create().address, "jurisdiction": "US-FL"})
    body = passport_kyc("US-FL")
    body["document"]["expires_on"] = "2020-01-01"
    with platform.client(key.json()["api_key"]) as client:
        # the answer is the applicant as stored once the session opened: pending, or already the verdict when the
        # provider's webhook (sent at once) was applied before that read
        assert client.post("/v1/borrowers/me/kyc", json=body).json()["state"] in ("pending", "rejected")
        kyc = kyc_verdict(client, key.json()["api_key"])
    assert kyc["state"] == "rejected"
    assert "kyc.document-expired" in {reason["code"] for reason in kyc["reasons"]}


def test_scores_grades_and_declines_follow_the_profile(platform: RunningPlatform) -> None:
    key = platform.onboard(Account.create().address, profile={})
    unknown = _post(platform, key).json()
    assert unknown["status"] == "declined"
    assert unknown["quotes"] == []
    assert unknown["risk"]["reasons"], "a decline carries its principal reasons"
    assert "R20" in {reason["code"] for reason in unknown["risk"]["reasons"]}

    middling = _post(platform, key, credit_profile=MIDDLING).json()
    good = _post(platform, key, credit_profile=GOOD_PROFILE).json()
    assert middling["status"] == good["status"] == "quoted"
    assert good["risk"]["score"] > middling["risk"]["score"]
    assert good["risk"]["grade"] < middling["risk"]["grade"]  # "A" before "D"
    good_pool = {q["chain"]: q["rate_bps"] for q in good["quotes"] if q["kind"] == "pool"}
    middling_pool = {q["chain"]: q["rate_bps"] for q in middling["quotes"] if q["kind"] == "pool"}
    assert all(middling_pool[chain] > good_pool[chain] for chain in good_pool), "a worse grade pays a wider spread"

    tiny_collateral = _post(platform, key, collateral={"asset": "WETH", "amount": "0.01"}).json()
    assert tiny_collateral["status"] == "declined"


def test_an_offer_above_the_usury_cap_is_dropped_with_its_reason(platform: RunningPlatform) -> None:
    grade_e = MIDDLING | {"other_installment_plans": "bank"}
    key = platform.onboard(Account.create().address, jurisdiction="US-TX", profile=grade_e)
    body = _post(platform, key).json()
    assert body["risk"]["grade"] == "E"
    bank = next(o for o in body["provider_outcomes"] if o["provider_id"] == "sim-bank")
    assert bank["outcome"] == "dropped"
    assert "18" in bank["detail"]
    assert {q["provider_id"] for q in body["quotes"]} == {
        "pool:ethereum-local:USDC",
        "pool:polygon-local:USDC",
        "pool:arbitrum-local:USDC",
    }


def test_new_york_gets_no_defi_offers(platform: RunningPlatform) -> None:
    key = platform.onboard(Account.create().address, jurisdiction="US-NY")
    body = _post(platform, key).json()
    assert {q["kind"] for q in body["quotes"]} == {"traditional"}


def test_too_many_requests_are_stopped(platform: RunningPlatform) -> None:
    key = platform.onboard(Account.create().address)
    statuses = [_post(platform, key, amount="100.00").status_code for _ in range(26)]
    assert statuses[:25] == [201] * 25
    assert statuses[25] == 429


def test_identity_erasure_is_refused_during_retention_and_shreds_the_identity_otherwise(
    platform: RunningPlatform,
) -> None:
    with_records = platform.onboard(Account.create().address)
    assert _post(platform, with_records).status_code == 201
    without_records = platform.onboard(Account.create().address)
    ids = {}
    for name, key in (("with", with_records), ("without", without_records)):
        with platform.client(key) as client:
            ids[name] = client.get("/v1/borrowers/me").json()["id"]
    with platform.client(platform.admin_key) as admin:
        refused = admin.delete(f"/v1/borrowers/{ids['with']}/identity")
        erased = admin.delete(f"/v1/borrowers/{ids['without']}/identity")
    assert refused.status_code == 409
    assert "12 CFR 1002.12" in refused.json()["detail"]
    assert erased.status_code == 204
    after = _post(platform, without_records)
    assert after.status_code == 403, "an erased identity can no longer be screened"
    assert {reason["code"] for reason in after.json()["reasons"]} == {"kyc.not-approved"}


def test_logs_are_json_with_the_correlation_id_and_no_identity(platform: RunningPlatform) -> None:
    key = platform.onboard(Account.create().address)
    with platform.client(key) as client:
        response = client.post("/v1/credit-requests", json=REQUEST, headers={"X-Correlation-Id": "trace-me-42"})
    assert response.headers["X-Correlation-Id"] == "trace-me-42"
    lines = [json.loads(line) for line in (platform.data_dir / "api.log").read_text().splitlines() if line]
    assert any(line["correlation_id"] == "trace-me-42" and "/v1/credit-requests" in line["message"] for line in lines)
    text = (platform.data_dir / "api.log").read_text()
    assert "KYC of A** L*******" in text, "the KYC line is logged with the names masked"
    assert "Lovelace" not in text


@pytest.mark.parametrize("last_name", ["Hopper", "Hopper ", "Höpper", "HOPPER"])
def test_a_covered_servicemember_gets_no_offer_above_the_mla_36_percent_mapr(
    platform: RunningPlatform, last_name: str
) -> None:
    """Whatever spelling of the name on their passport the KYC provider accepted: "Hopper " (a blank) and "Höpper"
    were asked about as typed, answered "not covered" by the DoD's service, which lists "Hopper", and quoted at 59%."""
    covered_kyc = passport_kyc("US-FL", first="Grace", last="Hopper")
    covered_kyc["identity"]["last_name"] = last_name
    covered_kyc["identity"]["ssn_or_dod_id"] = COVERED_SERVICEMEMBER["ssn_or_dod_id"]
    covered = platform.onboard(Account.create().address, kyc=covered_kyc)
    civilian = platform.onboard(Account.create().address, kyc=passport_kyc("US-FL", first="Grace", last="Hopper"))
    short_loan = {"term_days": 7}  # the origination fee over a week puts the MAPR above 36%
    for_covered = _post(platform, covered, **short_loan).json()
    for_civilian = _post(platform, civilian, **short_loan).json()
    dropped = {o["provider_id"] for o in for_covered["provider_outcomes"] if o["outcome"] == "dropped"}
    assert dropped, for_covered["provider_outcomes"]
    assert all("36" in o["detail"] for o in for_covered["provider_outcomes"] if o["outcome"] == "dropped")
    civilian_quoted = {q["provider_id"] for q in for_civilian["quotes"]}
    assert dropped <= civilian_quoted, "the same offers are kept for a borrower the MLA does not cover"
    assert all(Decimal(q["disclosure"]["apr"]) > 36 for q in for_civilian["quotes"] if q["provider_id"] in dropped)


def _review_of(platform: RunningPlatform, key: str) -> dict[str, Any]:
    """The borrower's one pending sanctions review, as the admin queue lists it."""
    with platform.client(key) as client:
        me = client.get("/v1/borrowers/me").json()
    assert me["sanctions_screening"]["status"] in ("held-for-review", "blocked")
    review_id = me["sanctions_screening"]["reviews"][0]["id"]
    with platform.client(platform.admin_key) as admin:
        pending = admin.get("/v1/admin/sanctions-reviews", params={"state": "pending", "limit": 200}).json()
        assert review_id in {item["id"] for item in pending["items"]}
        evidence = admin.get(f"/v1/admin/sanctions-reviews/{review_id}").json()
    return dict(evidence)


def test_a_possible_name_match_is_held_then_cleared_by_an_admin(platform: RunningPlatform) -> None:
    key = platform.onboard(Account.create().address, kyc=passport_kyc("US-FL", first="Mazen", last="Hussein"))
    held = _post(platform, key)
    assert held.status_code == 403, held.text
    reasons = {reason["code"]: reason["message"] for reason in held.json()["reasons"]}
    assert "sanctions.review-pending" in reasons
    assert "HUSSEIN" not in reasons["sanctions.review-pending"]  # the borrower is not told who is listed

    evidence = _review_of(platform, key)
    assert evidence["query"] == "Mazen Hussein"
    assert evidence["review"]["primary_name"] == "HUSSEIN, Mazen Ali"
    assert evidence["review"]["outcome"] == "possible-match"
    assert evidence["review"]["list_version"].startswith("ofac-sdn-names@")
    assert "MAZEN~MAZEN" in evidence["why"]
    assert {n["name"] for n in evidence["entry"]} >= {"HUSSEIN, Mazen Ali"}
    review_id = evidence["review"]["id"]
    with platform.client(platform.admin_key) as admin:
        refused = admin.post(f"/v1/admin/sanctions-reviews/{review_id}/clear", json={"note": ""})
        cleared = admin.post(f"/v1/admin/sanctions-reviews/{review_id}/clear", json={"note": "born 1985, not 1966"})
        again = admin.post(f"/v1/admin/sanctions-reviews/{review_id}/confirm", json={"note": "second thoughts"})
        admin_keys = admin.get("/v1/api-keys", params={"role": "admin", "limit": 200}).json()["items"]
    (bootstrap_key,) = [item for item in admin_keys if item["bootstrap"]]
    assert refused.status_code == 422
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["state"] == "cleared"
    assert cleared.json()["reviewer"] == f"admin:{bootstrap_key['id']}", "which admin's key gave the verdict"
    assert again.status_code == 409

    retried = _post(platform, key)
    assert retried.status_code == 201, retried.text  # screened clear: the request goes on to scoring and quotes
    with platform.client(key) as client:
        assert client.get("/v1/borrowers/me").json()["sanctions_screening"]["status"] == "clear"
    borrower_id = evidence["review"]["borrower_id"]
    decisions = _decisions(platform, borrower_id)
    assert ("sanctions-review", "allow") in decisions
    assert ("credit-request", "review") in decisions


def test_a_name_in_cyrillic_is_held_for_review_not_quoted(platform: RunningPlatform) -> None:
    """Its spelling key is empty (no transliteration): once screened clear and quoted, now held for a person — in
    the admins' review queue, where a verdict releases it for the identity reviewed, and for no other."""
    key = platform.onboard(Account.create().address, kyc=passport_kyc("US-FL", first="Рамзан", last="Кадыров"))
    held = _post(platform, key)
    assert held.status_code == 403, held.text
    reasons = {reason["code"]: reason["message"] for reason in held.json()["reasons"]}
    assert "could not be screened in Latin script" in reasons["sanctions.name-not-screened"]
    with platform.client(key) as client:
        me = client.get("/v1/borrowers/me").json()
    borrower_id = me["id"]
    assert ("credit-request", "review") in _decisions(platform, borrower_id)
    assert me["sanctions_screening"]["status"] == "held-for-review"
    (review_ref,) = me["sanctions_screening"]["reviews"]
    review_id = review_ref["id"]
    assert f"(review {review_id})" in reasons["sanctions.name-not-screened"]

    with platform.client(platform.admin_key) as admin:
        pending = admin.get("/v1/admin/sanctions-reviews", params={"state": "pending", "limit": 200}).json()
        (item,) = [item for item in pending["items"] if item["id"] == review_id]
        evidence = admin.get(f"/v1/admin/sanctions-reviews/{review_id}").json()
        cleared = admin.post(
            f"/v1/admin/sanctions-reviews/{review_id}/clear", json={"note": "passport MRZ KADYROV RAMZAN, born 1985"}
        )
        again = admin.post(f"/v1/admin/sanctions-reviews/{review_id}/confirm", json={"note": "second thoughts"})
        admin_keys = admin.get("/v1/api-keys", params={"role": "admin", "limit": 200}).json()["items"]
    assert (item["kind"], item["ent_num"], item["outcome"], item["borrower_id"]) == (
        "name-not-screened",
        None,
        "not-screened",
        borrower_id,
    )
    assert (item["listed_name"], item["score"]) == (None, None)
    assert (evidence["query"], evidence["entry"], evidence["entry_changed"]) == ("Рамзан Кадыров", [], False)
    (bootstrap_key,) = [item for item in admin_keys if item["bootstrap"]]
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["state"] == "cleared"
    assert cleared.json()["reviewer"] == f"admin:{bootstrap_key['id']}", "which admin's key gave the verdict"
    assert cleared.json()["review_decision_id"]
    assert again.status_code == 409

    retried = _post(platform, key)
    assert retried.status_code == 201, retried.text  # cleared: the request goes on to scoring and quotes
    with platform.client(key) as client:
        assert client.get("/v1/borrowers/me").json()["sanctions_screening"]["status"] == "clear"
    assert ("sanctions-review", "allow") in _decisions(platform, borrower_id)

    # verified again as another identity: the clearance was for the one reviewed and does not carry over
    with platform.client(key) as client:
        submitted = client.post("/v1/borrowers/me/kyc", json=passport_kyc("US-FL", first="Рамзан", last="Кадиров"))
        assert submitted.status_code == 200, submitted.text
        assert kyc_verdict(client, key)["state"] == "approved"
    renamed = _post(platform, key)
    assert renamed.status_code == 403, renamed.text
    reasons = {reason["code"]: reason["message"] for reason in renamed.json()["reasons"]}
    assert "sanctions.name-not-screened" in reasons
    assert review_id not in reasons["sanctions.name-not-screened"]  # a new review, of the new identity
    with platform.client(platform.admin_key) as admin:
        evidence = admin.get(f"/v1/admin/sanctions-reviews/{review_id}").json()
    assert evidence["entry_changed"] is True  # the identity reviewed is not the borrower's any more


def test_a_confirmed_name_not_screened_blocks(platform: RunningPlatform) -> None:
    key = platform.onboard(Account.create().address, kyc=passport_kyc("US-FL", first="أيمن", last="الظواهري"))
    assert _post(platform, key).status_code == 403
    with platform.client(key) as client:
        me = client.get("/v1/borrowers/me").json()
    (review_ref,) = me["sanctions_screening"]["reviews"]
    with platform.client(platform.admin_key) as admin:
        confirmed = admin.post(
            f"/v1/admin/sanctions-reviews/{review_ref['id']}/confirm", json={"note": "the listed party's passport"}
        )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["state"] == "confirmed"
    blocked = _post(platform, key)
    assert blocked.status_code == 403
    assert "sanctions.name-match" in {reason["code"] for reason in blocked.json()["reasons"]}
    with platform.client(key) as client:
        assert client.get("/v1/borrowers/me").json()["sanctions_screening"]["status"] == "blocked"
    assert ("sanctions-review", "deny") in _decisions(platform, me["id"])


def test_a_confirmed_name_match_blocks_and_is_recorded(platform: RunningPlatform) -> None:
    key = platform.onboard(Account.create().address, kyc=passport_kyc("US-FL", first="Sergey", last="Gizunov"))
    assert _post(platform, key).status_code == 403
    evidence = _review_of(platform, key)
    review_id = evidence["review"]["id"]
    with platform.client(platform.admin_key) as admin:
        confirmed = admin.post(f"/v1/admin/sanctions-reviews/{review_id}/confirm", json={"note": "same birth date"})
    assert confirmed.json()["state"] == "confirmed"
    assert confirmed.json()["review_decision_id"]

    blocked = _post(platform, key)
    assert blocked.status_code == 403
    assert "sanctions.name-match" in {reason["code"] for reason in blocked.json()["reasons"]}
    with platform.client(key) as client:
        assert client.get("/v1/borrowers/me").json()["sanctions_screening"]["status"] == "blocked"
    assert ("sanctions-review", "deny") in _decisions(platform, evidence["review"]["borrower_id"])

    seen: list[str] = []
    with platform.client(platform.admin_key) as admin:
        page = admin.get("/v1/admin/sanctions-reviews", params={"limit": 1}).json()
        while True:
            assert len(page["items"]) <= 1
            seen += [item["id"] for item in page["items"]]
            if page["next"] is None:
                break
            page = admin.get(page["next"]).json()
        assert admin.get("/v1/admin/sanctions-reviews", params={"cursor": "not-ours"}).status_code == 400
    assert review_id in seen
    assert len(seen) == len(set(seen))  # a cursor page never repeats a row


def _kyc_of(platform: RunningPlatform, key: str) -> dict[str, Any]:
    with platform.client(key) as client:
        kyc: dict[str, Any] = client.get("/v1/borrowers/me").json()["kyc"]
    return kyc


def test_the_tier_is_the_providers_never_the_borrowers_claim(platform: RunningPlatform) -> None:
    # the security review's probe: an invented passport claiming address, liveness and source of funds
    probe = passport_kyc("US-FL", first="Invented", last="Person")
    probe["document"] |= {"proves_address": True, "liveness_passed": True, "source_of_funds": True}
    claimed = platform.onboard(Account.create().address, kyc=probe)
    assert _kyc_of(platform, claimed)["tier"] == "STANDARD", "the provider verified STANDARD; the claims are ignored"
    enhanced = passport_kyc("US-FL")
    enhanced["document"]["number"] = "E7654321"  # the simulated provider's enhanced-due-diligence test identity
    assert _kyc_of(platform, platform.onboard(Account.create().address, kyc=enhanced))["tier"] == "ENHANCED"


def test_only_the_providers_signed_webhook_sets_a_tier(platform: RunningPlatform) -> None:
    key = platform.onboard(Account.create().address)
    kyc = _kyc_of(platform, key)
    with platform.client(key) as client:
        subject = client.get("/v1/borrowers/me").json()["id"]
    review = {
        "eventId": str(uuid.uuid4()),
        "type": "applicantReviewed",
        "applicantId": kyc["applicant_id"],
        "externalUserId": subject,
        "state": "approved",
        "tier": 3,
        "reasons": [],
    }
    body = json.dumps(review).encode()
    url = f"{platform.api_url}/v1/kyc/webhooks"
    now = datetime.now(UTC)
    forged = httpx.post(url, content=body, headers=sign_webhook(body, b"a guessed secret", now))
    non_ascii = httpx.post(url, content=body, headers={SIGNATURE_HEADER.encode(): "t=1,v1=\u00e9".encode()})
    oversized = httpx.post(url, content=b"{" + b" " * 70_000 + b"}", headers=sign_webhook(body, b"x", now))
    unsigned = httpx.post(url, content=body)
    assert [r.status_code for r in (forged, non_ascii, oversized, unsigned)] == [401, 401, 413, 401]
    assert forged.headers["content-type"].startswith("application/problem+json")
    assert _kyc_of(platform, key)["tier"] == "STANDARD"
    signed = sign_webhook(body, KYC_SECRET.encode(), now)  # what the provider itself would send
    assert httpx.post(url, content=body, headers=signed).status_code == 204
    assert _kyc_of(platform, key)["tier"] == "ENHANCED"
    assert httpx.post(url, content=body, headers=signed).status_code == 401, "a replayed delivery is refused"
    elsewhere = json.dumps(review | {"eventId": str(uuid.uuid4()), "applicantId": "sim-unknown"}).encode()
    misdirected = httpx.post(url, content=elsewhere, headers=sign_webhook(elsewhere, KYC_SECRET.encode(), now))
    assert misdirected.status_code == 422, "signed, but naming an applicant never created: not applied"
    assert _kyc_of(platform, key)["tier"] == "ENHANCED"
