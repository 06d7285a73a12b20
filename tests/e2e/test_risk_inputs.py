"""What a borrower sends risk, over HTTP: a purpose is read as the model's code whatever its spelling, and one the
model cannot read is refused with the allowed values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from eth_account import Account

from api.demo import passport_kyc
from risk.profile import MAX_EXISTING_CREDITS, PURPOSES
from tests.support.platform import RunningPlatform

pytestmark = pytest.mark.e2e

REQUEST: dict[str, Any] = {
    "amount": "1500.00",
    "asset": "USDC",
    "term_days": 180,
    "collateral": {"asset": "WETH", "amount": "2.0"},
}
#: a middling applicant whose grade the purpose moves (education −47 points, used car +29, "other" −6)
PROFILE = {
    "checking": "50",
    "savings": "50",
    "credit_history": "paid_duly_so_far",
    "employment_years": "2",
    "monthly_disposable_income": "2000",
    "property": "car_or_other",
    "other_installment_plans": "none",
    "housing": "rent",
}
PROBLEM_JSON = "application/problem+json"


def _terms(answer: dict[str, Any]) -> tuple[Any, ...]:
    risk = answer["risk"]
    return answer["status"], risk["score"], risk["grade"], risk["max_ltv_bps"], risk["spread_bps"]


def test_a_purpose_is_scored_as_its_code_whatever_its_case(shared_platform: RunningPlatform) -> None:
    key = shared_platform.onboard(Account.create().address, profile=PROFILE)
    with shared_platform.client(key) as client:
        answers = {
            purpose: client.post("/v1/credit-requests", json=REQUEST | {"purpose": purpose})
            for purpose in ("education", "Education", "Used car", "used_car")
        }
        unknown = client.post("/v1/credit-requests", json=REQUEST | {"purpose": "school tuition"})
        general = client.post("/v1/credit-requests", json=REQUEST)
    assert {purpose: answer.status_code for purpose, answer in answers.items()} == dict.fromkeys(answers, 201)
    # "Education" was scored as the model's "other": grade C at 600 bps instead of education's D at 900
    assert _terms(answers["Education"].json()) == _terms(answers["education"].json())
    assert _terms(answers["Used car"].json()) == _terms(answers["used_car"].json())
    assert answers["used_car"].json()["risk"]["score"] - answers["education"].json()["risk"]["score"] == 29 + 47
    assert unknown.status_code == 422
    assert unknown.headers["content-type"].startswith(PROBLEM_JSON)
    assert "unknown purpose 'school tuition'" in unknown.json()["detail"]
    assert all(purpose in unknown.json()["detail"] for purpose in PURPOSES)
    assert general.status_code == 201, general.text  # the default, scored as the model's "other"
    assert general.json()["risk"]["score"] - answers["education"].json()["risk"]["score"] == -6 + 47


def test_a_refused_request_keeps_the_stored_credit_profile(shared_platform: RunningPlatform) -> None:
    """A request's ``credit_profile`` replaced the stored one before the request was checked: a 422 (an asset not
    lent) or a 403 (screening) still overwrote it. It is kept only with a request that is written."""
    key = shared_platform.onboard(Account.create().address, profile=PROFILE)
    changed = PROFILE | {"checking": "no_account", "housing": "own"}
    with shared_platform.client(key) as client:
        before = client.get("/v1/borrowers/me").json()["credit_profile"]
        invalid = client.post("/v1/credit-requests", json=REQUEST | {"asset": "WETH", "credit_profile": changed})
        not_lent = client.get("/v1/borrowers/me").json()["credit_profile"]
        written = client.post("/v1/credit-requests", json=REQUEST | {"credit_profile": changed})
        after = client.get("/v1/borrowers/me").json()["credit_profile"]
    assert invalid.status_code == 422, invalid.text
    assert invalid.json()["type"].endswith("invalid-credit-request")
    assert not_lent == before
    assert before["checking"] == "50"
    assert written.status_code == 201, written.text
    assert (after["checking"], after["housing"]) == ("no_account", "own")


def test_a_count_of_credits_past_its_bound_is_refused_and_never_stored(shared_platform: RunningPlatform) -> None:
    """``existing_credits`` of 2^53 + 1 was stored (200), and every credit request of the borrower was then a
    text/plain 500 (its inputs could not be hashed as RFC 8785 JSON), and so was a request carrying it inline. Both
    are a 422 naming the field now; a profile stored so before reads the count as unknown, and is scored."""
    key = shared_platform.onboard(Account.create().address, profile=PROFILE)
    huge = PROFILE | {"existing_credits": 9007199254740993}
    with shared_platform.client(key) as client:
        stored = client.put("/v1/borrowers/me/credit-profile", json=huge)
        inline = client.post("/v1/credit-requests", json=REQUEST | {"credit_profile": huge})
        me = client.get("/v1/borrowers/me").json()
        at_bound = client.post(
            "/v1/credit-requests",
            json=REQUEST | {"credit_profile": PROFILE | {"existing_credits": MAX_EXISTING_CREDITS}},
        )
    for refused, field in ((stored, "existing_credits"), (inline, "credit_profile.existing_credits")):
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith(PROBLEM_JSON)
        assert refused.json()["errors"] == [
            {"field": field, "message": f"Input should be less than or equal to {MAX_EXISTING_CREDITS}"}
        ]
    assert me["credit_profile"]["existing_credits"] is None
    assert at_bound.status_code == 201, at_bound.text

    # a profile stored before the bound, as it was written
    engine = sa.create_engine(f"sqlite:///{Path(shared_platform.data_dir) / 'creditmesh.db'}")
    with engine.begin() as connection:
        connection.execute(
            sa.text("update credit_profiles set profile = :profile where borrower_id = :borrower"),
            {"profile": json.dumps(huge), "borrower": me["id"]},
        )
    engine.dispose()
    with shared_platform.client(key) as client:
        read = client.get("/v1/borrowers/me")
        scored = client.post("/v1/credit-requests", json=REQUEST)
    assert read.status_code == 200, read.text
    profile = read.json()["credit_profile"]
    assert (profile["checking"], profile["housing"], profile["existing_credits"]) == ("50", "rent", None)
    assert scored.status_code == 201, scored.text


def test_a_request_refused_by_screening_keeps_the_stored_credit_profile(shared_platform: RunningPlatform) -> None:
    with shared_platform.client(shared_platform.admin_key) as admin:
        registered = admin.post(
            "/v1/borrowers", json={"wallet_address": Account.create().address, "jurisdiction": "US-FL"}
        )
    key = registered.json()["api_key"]  # no identity verified: refused by screening
    with shared_platform.client(key) as client:
        assert client.put("/v1/borrowers/me/credit-profile", json=PROFILE).status_code == 200
        refused = client.post("/v1/credit-requests", json=REQUEST | {"credit_profile": {"checking": "no_account"}})
        kept = client.get("/v1/borrowers/me").json()["credit_profile"]
    assert refused.status_code == 403, refused.text
    assert kept["checking"] == "50"


def test_kyc_submissions_are_limited_per_borrower_and_a_replay_does_not_count(
    shared_platform: RunningPlatform,
) -> None:
    """Every submission created an applicant at the KYC provider (billed per applicant), without limit. Five a day
    (``CREDITMESH_KYC_SUBMISSIONS_PER_DAY``), the onboarding's included; an Idempotency-Key replay is not counted."""
    key = shared_platform.onboard(Account.create().address)  # the first of the day
    with shared_platform.client(key) as client:
        answers = [client.post("/v1/borrowers/me/kyc", json=passport_kyc("US-FL")) for _ in range(3)]
        keyed = {"Idempotency-Key": "kyc-fifth"}
        fifth = client.post("/v1/borrowers/me/kyc", json=passport_kyc("US-FL"), headers=keyed)
        sixth = client.post("/v1/borrowers/me/kyc", json=passport_kyc("US-FL"))
        replayed = client.post("/v1/borrowers/me/kyc", json=passport_kyc("US-FL"), headers=keyed)
    assert [answer.status_code for answer in [*answers, fifth]] == [200] * 4
    assert sixth.status_code == 429, sixth.text
    assert sixth.headers["content-type"].startswith(PROBLEM_JSON)
    assert sixth.json()["type"].endswith("/kyc-submission-limit")
    assert sixth.json()["title"] == "Too many identity verifications"
    assert 0 < int(sixth.headers["Retry-After"]) <= 86_400
    assert replayed.status_code == 200
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == fifth.json()
