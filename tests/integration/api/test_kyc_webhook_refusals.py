"""Refused KYC webhooks count toward their source address's refusal limit (an event the provider signed that cannot
be applied is a 422 that does not count), the limiter the lenders' webhooks use
(``ProviderRegistry.webhook_refusals``): past it the address's refusals are 429 with ``Retry-After``, another address
is untouched, and the identity provider's own signed verdict from the address past its limit is still applied (the
route verifies before it refuses). Served over real HTTP with the simulated identity provider, whose verdict comes
from the same loopback address as the forgeries."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from api import problems
from api.auth import ensure_bootstrap_admin
from api.demo import passport_kyc
from chain.devnet import free_port
from compliance.kyc import KycState, sign_webhook
from compliance.sim.identity import IdentitySimConfig, create_identity_app
from providers.webhooks import MemoryRefusalLimiter, RefusalLimits
from store.compliance import SqlKycRepository
from store.db import Database
from tests.support.kyc_api import kyc_app
from tests.support.served import served

pytestmark = pytest.mark.integration

ADMIN = "cm_admin_kyc_refusal_tests"
KYC_SECRET = "kyc-refusal-test-secret"
WALLET = "0x" + "6b" * 20
LIMITS = RefusalLimits(per_window=3, window_seconds=3_600)


def _state(database: Database, borrower_id: str) -> KycState | None:
    with database.unit_of_work() as uow:
        latest = SqlKycRepository(uow.session).latest_for_subject(borrower_id)
        return None if latest is None else latest.state


def test_refused_kyc_webhooks_are_limited_per_address_and_the_providers_verdict_still_lands(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'kyc.db'}")
    database.migrate()
    ensure_bootstrap_admin(database, ADMIN)
    provider_port, api_port = free_port(), free_port()
    app = kyc_app(database, tmp_path, provider_port, KYC_SECRET, MemoryRefusalLimiter(LIMITS))
    review = {"eventId": str(uuid.uuid4()), "type": "applicantReviewed", "applicantId": "guessed", "state": "approved"}
    forged_body = json.dumps(review | {"externalUserId": "someone", "tier": 3, "reasons": []}).encode()
    forged = sign_webhook(forged_body, b"a guessed secret", datetime.now(UTC))

    with served(app, api_port) as api_url, httpx.Client(base_url=api_url, timeout=30) as client:
        registered = client.post("/v1/borrowers", headers={"X-API-Key": ADMIN}, json={"wallet_address": WALLET})
        assert registered.status_code == 201, registered.text
        borrower_id, key = registered.json()["id"], registered.json()["api_key"]

        # the provider's own signature on events it cannot mean (an applicant never created, a verdict dated ahead):
        # 422, never a 401 inviting it to doubt its secret, and never counted toward its address's limit
        unknown = json.dumps(review | {"externalUserId": borrower_id, "tier": 3, "reasons": []}).encode()
        ahead = json.loads(unknown) | {"eventId": str(uuid.uuid4()), "reviewedAt": "2999-01-01T00:00:00Z"}
        for body in (unknown, json.dumps(ahead).encode()) * 2:
            unusable = client.post(
                "/v1/kyc/webhooks", content=body, headers=sign_webhook(body, KYC_SECRET.encode(), datetime.now(UTC))
            )
            assert unusable.status_code == 422, unusable.text
            assert unusable.json()["type"].endswith("/kyc-event-unusable")
        assert "unknown applicant guessed" in unusable.json()["detail"] or "reviewedAt" in unusable.json()["detail"]
        assert _state(database, borrower_id) is None

        answers = [client.post("/v1/kyc/webhooks", content=forged_body, headers=forged) for _ in range(4)]
        assert [answer.status_code for answer in answers] == [401, 401, 401, 429]
        assert answers[3].headers["Retry-After"] == "3600"
        assert answers[3].headers["content-type"] == problems.PROBLEM_JSON
        oversized = client.post("/v1/kyc/webhooks", content=b"{" + b" " * 70_000 + b"}", headers=forged)
        assert oversized.status_code == 429, "a body over the cap is a refusal too"

        elsewhere = httpx.HTTPTransport(local_address="127.0.0.2")  # another loopback address, another source
        with httpx.Client(transport=elsewhere, base_url=api_url, timeout=30) as other:
            assert other.post("/v1/kyc/webhooks", content=forged_body, headers=forged).status_code == 401

        config = IdentitySimConfig(KYC_SECRET.encode(), f"{api_url}/v1/kyc/webhooks", b"unused")
        with served(create_identity_app(config), provider_port):
            submitted = client.post("/v1/borrowers/me/kyc", headers={"X-API-Key": key}, json=passport_kyc("US-NY"))
            assert submitted.status_code == 200, submitted.text
            deadline = time.monotonic() + 30  # the provider's signed verdict, from 127.0.0.1 as the forgeries were
            while _state(database, borrower_id) is not KycState.APPROVED:
                assert time.monotonic() < deadline, _state(database, borrower_id)
                time.sleep(0.05)
        assert client.post("/v1/kyc/webhooks", content=forged_body, headers=forged).status_code == 429
    database.dispose()
