"""The demo borrower of local runs (and of the tests): registered by the admin, identity verified with a valid
passport through the local KYC provider, and a credit profile on file — what a real borrower does through the API."""

from __future__ import annotations

from typing import Any

import httpx

DEMO_PROFILE: dict[str, Any] = {
    "checking": "no_account",
    "savings": "2000",
    "credit_history": "critical_or_credits_elsewhere",
    "employment_years": "8",
    "monthly_disposable_income": "4000",
    "property": "real_estate",
    "other_installment_plans": "none",
    "housing": "own",
    "existing_credits": 1,
}


def passport_kyc(country: str, first: str = "Ada", last: str = "Lovelace") -> dict[str, Any]:
    """A KYC submission with an unexpired passport that matches the identity (address and liveness checked)."""
    person = {"first_name": first, "last_name": last, "date_of_birth": "1985-12-10"}
    document = person | {
        "document_type": "passport",
        "number": "P1234567",
        "issuing_country": "US",
        "expires_on": "2031-01-31",
        "proves_address": True,
        "liveness_passed": True,
    }
    return {"identity": person | {"country": country}, "document": document}


def onboard(
    api_url: str,
    admin_key: str,
    wallet: str,
    jurisdiction: str = "US-FL",
    profile: dict[str, Any] | None = None,
    kyc: dict[str, Any] | None = None,
) -> str:
    """Register ``wallet`` as a borrower, pass KYC and store a credit profile; returns the borrower's API key."""
    with httpx.Client(base_url=api_url, timeout=30) as client:
        registered = client.post(
            "/v1/borrowers",
            headers={"X-API-Key": admin_key},
            json={"wallet_address": wallet, "jurisdiction": jurisdiction},
        )
        if registered.status_code != 201:
            raise RuntimeError(f"registering {wallet} failed: {registered.text}")
        key: str = registered.json()["api_key"]
        headers = {"X-API-Key": key}
        checked = client.post("/v1/borrowers/me/kyc", headers=headers, json=kyc or passport_kyc(jurisdiction))
        if checked.status_code != 200 or checked.json()["state"] != "approved":
            raise RuntimeError(f"KYC of {wallet} failed: {checked.text}")
        saved = client.put(
            "/v1/borrowers/me/credit-profile", headers=headers, json=DEMO_PROFILE if profile is None else profile
        )
        if saved.status_code != 200:
            raise RuntimeError(f"credit profile of {wallet} refused: {saved.text}")
    return key
