"""Ways around the name screen, over HTTP: a reviewer's clearance carried over to another identity, invisible
characters inside a listed name."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from api.demo import kyc_verdict, passport_kyc
from tests.e2e.test_screening_and_scoring import _post, _review_of
from tests.support.platform import RunningPlatform

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def platform(shared_platform: RunningPlatform) -> RunningPlatform:
    """The e2e package's platform with default settings (``tests/e2e/conftest.py``)."""
    return shared_platform


def _born(kyc: dict[str, Any], day: str) -> dict[str, Any]:
    for part in ("identity", "document"):
        kyc[part]["date_of_birth"] = day
    return kyc


def _status(platform: RunningPlatform, key: str) -> str:
    with platform.client(key) as client:
        return str(client.get("/v1/borrowers/me").json()["sanctions_screening"]["status"])


def test_a_clearance_does_not_cover_the_listed_identity_the_borrower_verifies_later(platform: RunningPlatform) -> None:
    key = platform.onboard(
        Account.create().address, kyc=_born(passport_kyc("US-FL", first="Mazen", last="Hussein"), "1985-12-10")
    )
    assert _post(platform, key).status_code == 403  # a possible match on SDN entry 9587, HUSSEIN, Mazen Ali
    evidence = _review_of(platform, key)
    with platform.client(platform.admin_key) as admin:
        cleared = admin.post(
            f"/v1/admin/sanctions-reviews/{evidence['review']['id']}/clear",
            json={"note": "born 1985-12-10; the listed party was born 1982 or 1980"},
        )
    assert cleared.status_code == 200, cleared.text
    assert _post(platform, key).status_code == 201  # cleared for this identity

    # the borrower verifies again as the listed party: its full name and date of birth
    listed = _born(passport_kyc("US-FL", first="Mazen Ali", last="Hussein"), "1982-01-01")
    with platform.client(key) as client:
        assert client.post("/v1/borrowers/me/kyc", json=listed).status_code in (200, 201, 202)
        assert kyc_verdict(client, key)["state"] == "approved"
    refused = _post(platform, key)
    assert refused.status_code == 403, refused.text
    assert "sanctions.name-match" in {reason["code"] for reason in refused.json()["reasons"]}
    assert _status(platform, key) == "blocked"
    evidence = _review_of(platform, key)  # a review of the new identity, pending: the old clearance is not it
    assert evidence["review"]["state"] == "pending"
    assert evidence["review"]["outcome"] == "match"
    assert evidence["query"] == "Mazen Ali Hussein"

    # as a borrower who never had a clearance is
    fresh = platform.onboard(Account.create().address, kyc=listed)
    assert _post(platform, fresh).status_code == 403


def test_soft_hyphens_inside_a_listed_name_do_not_get_it_quoted(platform: RunningPlatform) -> None:
    hidden = "\u00ad".join("Maduro") + " " + "\u00ad".join("Moros")  # shown as "Maduro Moros"
    key = platform.onboard(
        Account.create().address, kyc=_born(passport_kyc("US-FL", first="Nicolas", last=hidden), "1962-11-23")
    )
    refused = _post(platform, key)
    assert refused.status_code == 403, refused.text
    assert "sanctions.name-match" in {reason["code"] for reason in refused.json()["reasons"]}
    assert _status(platform, key) == "blocked"
