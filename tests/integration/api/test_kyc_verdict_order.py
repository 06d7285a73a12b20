"""Verdicts on one applicant delivered out of order, over real HTTP with the simulated identity provider: the provider
retries a delivery for a minute, so an approval held up in transit can land after the re-review that rejected the
applicant. It overwrote the rejection (the last delivery won); a verdict is now dated by the provider's
``reviewedAt``, and one reached before the verdict stored is taken (204, so the retries stop) and ignored."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import ensure_bootstrap_admin
from api.demo import passport_kyc
from chain.devnet import free_port
from compliance.kyc import KycState, KycStatus, KycTier, sign_webhook
from compliance.sim.identity import IdentitySimConfig, create_identity_app
from store.compliance import SqlKycRepository
from store.db import Database
from tests.support.kyc_api import kyc_app
from tests.support.served import served

pytestmark = pytest.mark.integration

ADMIN = "cm_admin_kyc_order_tests"
KYC_SECRET = "kyc-verdict-order-secret"


def _status(database: Database, borrower_id: str) -> KycStatus | None:
    with database.unit_of_work() as uow:
        return SqlKycRepository(uow.session).latest_for_subject(borrower_id)


def _verdict(status: KycStatus, state: KycState, tier: KycTier, reviewed_at: datetime | None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventId": str(uuid.uuid4()),
        "type": "applicantReviewed",
        "applicantId": status.applicant_id,
        "externalUserId": status.subject_id,
        "state": state.value,
        "tier": int(tier),
        "reasons": [] if state is KycState.APPROVED else [{"code": "kyc.fraud", "message": "a forged document"}],
    }
    if reviewed_at is not None:
        payload["reviewedAt"] = reviewed_at.isoformat().replace("+00:00", "Z")
    return payload


def _deliver(client: httpx.Client, payload: dict[str, Any], signed_at: datetime | None = None) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = sign_webhook(body, KYC_SECRET.encode(), signed_at or datetime.now(UTC))
    return client.post("/v1/kyc/webhooks", content=body, headers=headers)


def test_an_older_verdict_delivered_late_does_not_overwrite_a_newer_one(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'kyc.db'}")
    database.migrate()
    ensure_bootstrap_admin(database, ADMIN)
    provider_port, api_port = free_port(), free_port()
    with served(kyc_app(database, tmp_path, provider_port, KYC_SECRET), api_port) as api_url:
        config = IdentitySimConfig(KYC_SECRET.encode(), f"{api_url}/v1/kyc/webhooks", b"unused")
        with served(create_identity_app(config), provider_port), httpx.Client(base_url=api_url, timeout=30) as client:
            registered = client.post(
                "/v1/borrowers", headers={"X-API-Key": ADMIN}, json={"wallet_address": "0x" + "7c" * 20}
            )
            borrower_id, key = registered.json()["id"], registered.json()["api_key"]
            submitted = client.post("/v1/borrowers/me/kyc", headers={"X-API-Key": key}, json=passport_kyc("US-NY"))
            assert submitted.status_code == 200, submitted.text
            deadline = time.monotonic() + 30
            while (first := _status(database, borrower_id)) is None or first.state is KycState.PENDING:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert first.state is KycState.APPROVED

            now = datetime.now(UTC)
            rejected = _verdict(first, KycState.REJECTED, KycTier.NONE, now)  # the provider's re-review
            held_up = _verdict(first, KycState.APPROVED, KycTier.ENHANCED, now - timedelta(seconds=40))
            assert _deliver(client, rejected).status_code == 204
            late = _deliver(client, held_up)  # its retry, re-signed now: the signature is fresh, the verdict old
            assert late.status_code == 204, "taken, so the provider stops retrying"
            stored = _status(database, borrower_id)
            assert stored is not None
            assert (stored.state, stored.tier) == (KycState.REJECTED, KycTier.NONE)
            assert [r.code for r in stored.reasons] == ["kyc.fraud"]
            assert _deliver(client, held_up).status_code == 401, "its event id was taken: a replay"
            assert first.reviewed_at is not None, "the simulated provider dates its verdict"

            ahead = _verdict(first, KycState.APPROVED, KycTier.ENHANCED, now + timedelta(hours=1))
            # signed by the provider, but not applied: a verdict dated ahead would outrank every later one (422: the
            # provider's own event, not a refusal of its signature)
            assert _deliver(client, ahead).status_code == 422
            naive = _verdict(first, KycState.APPROVED, KycTier.ENHANCED, None) | {"reviewedAt": "2026-11-29T08:00:00"}
            assert _deliver(client, naive).status_code == 422

            # a verdict without reviewedAt counts as reached when received: the last delivered wins, as before
            assert _deliver(client, _verdict(first, KycState.APPROVED, KycTier.BASIC, None)).status_code == 204
            stored = _status(database, borrower_id)
            assert stored is not None
            assert (stored.state, stored.tier) == (KycState.APPROVED, KycTier.BASIC)
            assert stored.reviewed_at is not None
            assert stored.reviewed_at >= now
    database.dispose()
