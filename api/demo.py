"""The demo borrower of local runs (and of the tests): registered by the admin, identity verified with a valid
passport through the (simulated) KYC provider, and a credit profile on file — what a real borrower does through the
API."""

from __future__ import annotations

import time
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
    """A KYC submission with an unexpired passport that matches the identity (the simulated provider verifies it at
    STANDARD: see ``compliance.kyc.SIMULATED_TIER_BY_PREFIX``)."""
    person = {"first_name": first, "last_name": last, "date_of_birth": "1985-12-10"}
    document = person | {
        "document_type": "passport",
        "number": "P1234567",
        "issuing_country": "US",
        "expires_on": "2031-01-31",
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
        if checked.status_code != 200:
            raise RuntimeError(f"KYC of {wallet} failed: {checked.text}")
        verdict = kyc_verdict(client, key)
        if verdict["state"] != "approved":
            raise RuntimeError(f"KYC of {wallet} failed: {verdict}")
        saved = client.put(
            "/v1/borrowers/me/credit-profile", headers=headers, json=DEMO_PROFILE if profile is None else profile
        )
        if saved.status_code != 200:
            raise RuntimeError(f"credit profile of {wallet} refused: {saved.text}")
    return key


def kyc_verdict(client: httpx.Client, api_key: str, timeout: float = 30.0) -> dict[str, Any]:
    """The borrower's KYC status once the provider's verdict has arrived (its signed webhook), polling ``/me``."""
    deadline = time.monotonic() + timeout
    while True:
        me = client.get("/v1/borrowers/me", headers={"X-API-Key": api_key})
        kyc: dict[str, Any] | None = me.json().get("kyc") if me.status_code == 200 else None
        if kyc is not None and kyc["state"] != "pending":
            return kyc
        if time.monotonic() > deadline:
            raise RuntimeError(f"no KYC verdict within {timeout} s: {me.text}")
        time.sleep(0.05)
