"""Who may borrow on an account, over HTTP with the simulated KYC provider: the identity the provider verified
against the account it borrows on (of age in the account's jurisdiction, resident there and not in a prohibited
jurisdiction), at the credit request and again at accept, whatever the borrower typed; an identity resident
elsewhere than the account is refused when submitted, before the provider is asked."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from eth_account import Account
from eth_account.signers.local import LocalAccount

from api.demo import DEMO_PROFILE, kyc_verdict, passport_kyc
from api.wallet import sign_acceptance
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


def _born(years_ago: int) -> str:
    today = date.today()
    return today.replace(year=today.year - years_ago, day=min(today.day, 28)).isoformat()


def _kyc(country: str, born: str = "1985-12-10") -> dict[str, Any]:
    submission = passport_kyc(country)
    for part in ("identity", "document"):
        submission[part]["date_of_birth"] = born
    return submission


def _register(platform: RunningPlatform, jurisdiction: str, wallet: str | None = None) -> str:
    with platform.client(platform.admin_key) as admin:
        registered = admin.post(
            "/v1/borrowers", json={"wallet_address": wallet or Account.create().address, "jurisdiction": jurisdiction}
        )
    assert registered.status_code == 201, registered.text
    key: str = registered.json()["api_key"]
    with platform.client(key) as client:
        assert client.put("/v1/borrowers/me/credit-profile", json=DEMO_PROFILE).status_code == 200
    return key


def _verified(platform: RunningPlatform, key: str, submission: dict[str, Any]) -> dict[str, Any]:
    """The provider's verdict on ``submission``."""
    with platform.client(key) as client:
        submitted = client.post("/v1/borrowers/me/kyc", json=submission)
        assert submitted.status_code == 200, submitted.text
        return kyc_verdict(client, key)


def _request(platform: RunningPlatform, key: str) -> Any:
    with platform.client(key) as client:
        return client.post("/v1/credit-requests", json=REQUEST)


def _codes(response: Any) -> set[str]:
    return {reason["code"] for reason in response.json().get("reasons", [])}


def _decisions(platform: RunningPlatform, key: str) -> list[tuple[str, str]]:
    """The borrower's compliance decisions, (kind, outcome) in the order they were made."""
    with platform.client(key) as client:
        subject = client.get("/v1/borrowers/me").json()["id"]
    engine = sa.create_engine(f"sqlite:///{platform.data_dir / 'creditmesh.db'}")
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("select kind, outcome from compliance_decisions where subject_ref = :s order by decided_at"),
            {"s": subject},
        ).all()
    engine.dispose()
    return [(str(kind), str(outcome)) for kind, outcome in rows]


def _quoted(platform: RunningPlatform, wallet: LocalAccount) -> tuple[str, dict[str, Any]]:
    """A verified Florida borrower of ``wallet`` with a quote: their key and the quote."""
    key = _register(platform, "US-FL", wallet.address)
    assert _verified(platform, key, _kyc("US-FL"))["state"] == "approved"
    quoted = _request(platform, key)
    assert quoted.status_code == 201, quoted.text
    return key, quoted.json()["quotes"][0]


def _accept(platform: RunningPlatform, key: str, wallet: LocalAccount, quote: dict[str, Any]) -> Any:
    """Accept ``quote``, signed by ``wallet``: screened before anything is asked of the chain."""
    signature = sign_acceptance(wallet, quote["acceptance_typed_data"])
    with platform.client(key) as client:
        return client.post(f"/v1/quotes/{quote['id']}/accept", json={"signature": signature})


def _moved(platform: RunningPlatform, key: str, jurisdiction: str) -> None:
    """The account's jurisdiction written as ``jurisdiction`` in the database: the borrower's identity, verified for
    the account as it was, now resident elsewhere than the account — what an identity stored before submissions were
    checked against the account is, and no submission can make any more."""
    with platform.client(key) as client:
        subject = client.get("/v1/borrowers/me").json()["id"]
    engine = sa.create_engine(f"sqlite:///{platform.data_dir / 'creditmesh.db'}")
    with engine.begin() as connection:
        connection.execute(
            sa.text("update borrowers set jurisdiction = :j where id = :id"), {"j": jurisdiction, "id": subject}
        )
    engine.dispose()


def test_a_borrower_under_age_in_the_accounts_state_is_refused_whatever_country_they_typed(
    platform: RunningPlatform,
) -> None:
    """A 19-year-old on a Mississippi account (majority at 21) typed Florida (18) as their country: the provider
    approved them by Florida's age, and they were quoted; the platform now checks the account's state. Such a
    submission is now refused before the provider is asked (422 identity.country); an identity stored so before is
    refused at the credit request, by the account's age of majority."""
    key = _register(platform, "US-MS")
    with platform.client(key) as client:
        typed = client.post("/v1/borrowers/me/kyc", json=_kyc("US-FL", _born(19)))
        assert typed.status_code == 422, typed.text
        assert [error["field"] for error in typed.json()["errors"]] == ["identity.country"]
    key = _register(platform, "US-FL")
    verdict = _verified(platform, key, _kyc("US-FL", _born(19)))
    assert verdict["state"] == "approved"  # the provider checks the country it was given
    _moved(platform, key, "US-MS")
    refused = _request(platform, key)
    assert refused.status_code == 403, refused.text
    assert "kyc.under-age" in _codes(refused)
    assert any("US-MS (21)" in reason["message"] for reason in refused.json()["reasons"])


@pytest.mark.parametrize("country", ["US-MS ", " US-MS", "US_MS", "USMS"])
def test_an_identity_country_not_written_as_a_code_is_refused(platform: RunningPlatform, country: str) -> None:
    """A code written "US-MS " was one the rules did not list: the provider checked the default age, 18."""
    key = _register(platform, "US-MS")
    with platform.client(key) as client:
        refused = client.post("/v1/borrowers/me/kyc", json=_kyc(country, _born(19)))
        assert refused.status_code == 422, refused.text
        assert client.get("/v1/borrowers/me").json()["kyc"] is None  # nothing went to the provider


def test_an_identity_country_in_lower_case_is_the_code(platform: RunningPlatform) -> None:
    key = _register(platform, "US-MS")
    verdict = _verified(platform, key, _kyc("us-ms", _born(19)))
    assert (verdict["state"], [r["code"] for r in verdict["reasons"]]) == ("rejected", ["kyc.under-age"])


def test_an_identity_resident_elsewhere_than_the_account_is_refused_at_submission(platform: RunningPlatform) -> None:
    """A Florida account verified with an identity resident in "US" (or New York, whose caps are lower, or Iran) was
    approved by the provider and then refused at every credit request (403 jurisdiction.residence-mismatch): it is now
    refused when submitted, before the provider is asked, and not counted against the submissions a day."""
    key = _register(platform, "US-FL")
    with platform.client(key) as client:
        for country in ("US", "us-ny", "IR", "US", "US-NY", "IR"):  # more than the 5 submissions a day
            refused = client.post("/v1/borrowers/me/kyc", json=_kyc(country))
            assert refused.status_code == 422, refused.text
            (error,) = refused.json()["errors"]
            assert error["field"] == "identity.country"
            assert error["message"].startswith(f"{country.upper()} is not the account's jurisdiction")
            assert "must be US-FL;" in error["message"]
        assert client.get("/v1/borrowers/me").json()["kyc"] is None  # nothing went to the provider
    assert _verified(platform, key, _kyc("US-FL"))["state"] == "approved"  # none of them counted
    assert _request(platform, key).status_code == 201


def test_a_subdivision_of_an_accounts_country_is_taken(platform: RunningPlatform) -> None:
    key = _register(platform, "GB")
    assert _verified(platform, key, _kyc("GB-LND"))["state"] == "approved"


def test_an_identity_stored_resident_elsewhere_than_the_account_is_refused_at_the_credit_request(
    platform: RunningPlatform,
) -> None:
    """An identity resident in "US" stored for a Florida account before submissions were checked: refused with the
    reason at every credit request (docs/compliance.md: the borrower verifies again), a recorded denial."""
    key = _register(platform, "US")
    assert _verified(platform, key, _kyc("US"))["state"] == "approved"
    _moved(platform, key, "US-FL")
    refused = _request(platform, key)
    assert refused.status_code == 403, refused.text
    assert _codes(refused) == {"jurisdiction.residence-mismatch"}
    decided = _decisions(platform, key)
    assert decided
    assert set(decided) == {("credit-request", "deny")}  # one record per product, each a recorded denial
    assert _verified(platform, key, _kyc("US-FL"))["state"] == "approved"  # verified again: quoted
    assert _request(platform, key).status_code == 201


def test_an_identity_resident_elsewhere_than_the_account_at_accept_is_refused(platform: RunningPlatform) -> None:
    wallet = Account.create()
    key, quote = _quoted(platform, wallet)
    _moved(platform, key, "US-NY")  # the Florida identity is not the New York account's
    refused = _accept(platform, key, wallet, quote)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("compliance-denied")
    assert _codes(refused) == {"jurisdiction.residence-mismatch"}
    assert ("acceptance", "deny") in _decisions(platform, key)


def test_a_verification_rejected_after_the_quote_is_refused_at_accept_and_recorded(platform: RunningPlatform) -> None:
    """Re-verified with an expired passport after the quote, the borrower's KYC is rejected: the accept was refused
    only by the exposure check (409 exposure-limit, the KYC tier's ceiling at NONE) inside the lock, whose rollback
    took the refusal's record with it. It is now the re-screen's: 403 kyc.not-approved, a recorded denial."""
    wallet = Account.create()
    key, quote = _quoted(platform, wallet)
    expired = _kyc("US-FL")
    expired["document"]["expires_on"] = "2020-01-01"
    assert _verified(platform, key, expired)["state"] == "rejected"
    refused = _accept(platform, key, wallet, quote)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("compliance-denied")
    assert _codes(refused) == {"kyc.not-approved"}
    assert _decisions(platform, key)[-1] == ("acceptance", "deny")
