"""The KYC provider down at ``POST /v1/borrowers/me/kyc`` (issue 17: no 500 on any input): the simulated identity
provider served over real HTTP, stopped, and started again forgetting its applicants before their verification — each
time a 503 ``identity-unavailable`` problem+json with Retry-After and nothing of the attempt kept (the verified
borrower's status and stored identity as they were); once it is back, the same Idempotency-Key runs again and passes
(a 5xx is never replayed). The API's routers are served in-process over real HTTP too, so the provider's signed
verdict reaches them."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from api import idempotency, problems
from api.auth import ensure_bootstrap_admin
from api.demo import passport_kyc
from chain.devnet import free_port
from compliance.kyc import KycState
from compliance.sim.identity import IdentitySimConfig, create_identity_app
from store.compliance import BorrowerIdentityRow, KycApplicantRow, SqlKycRepository
from store.db import Database
from tests.support.kyc_api import kyc_app
from tests.support.served import served

pytestmark = pytest.mark.integration

ADMIN = "cm_admin_kyc_outage_tests"
KYC_SECRET = "kyc-outage-test-secret"
WALLET = "0x" + "5a" * 20


def _identity_provider(api_url: str, forgets_applicants: bool = False) -> FastAPI:
    # max_applicants=0: the provider forgets an applicant as soon as it is created, so the verification session
    # that follows is refused (HTTP 404): the second call fails after the first one succeeded
    config = IdentitySimConfig(
        KYC_SECRET.encode(), f"{api_url}/v1/kyc/webhooks", b"unused", max_applicants=0 if forgets_applicants else 10
    )
    return create_identity_app(config)


def _kept(database: Database, borrower_id: str) -> tuple[int, KycState | None, bytes | None]:
    """What is stored of the borrower's KYC: applicants, the latest one's state, the sealed identity."""
    with database.unit_of_work() as uow:
        applicants = uow.session.scalar(
            select(func.count()).select_from(KycApplicantRow).where(KycApplicantRow.subject_id == borrower_id)
        )
        latest = SqlKycRepository(uow.session).latest_for_subject(borrower_id)
        identity = uow.session.get(BorrowerIdentityRow, borrower_id)
        return (
            int(applicants or 0),
            None if latest is None else latest.state,
            None if identity is None else identity.sealed_identity,
        )


def test_an_unavailable_identity_provider_is_a_503_and_nothing_is_kept(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'kyc.db'}")
    database.migrate()
    ensure_bootstrap_admin(database, ADMIN)
    provider_port, api_port = free_port(), free_port()
    app = kyc_app(database, tmp_path, provider_port, KYC_SECRET)
    submission = passport_kyc("US-NY")  # the account's jurisdiction (the default)

    with served(app, api_port) as api_url, httpx.Client(base_url=api_url, timeout=30) as client:
        registered = client.post("/v1/borrowers", headers={"X-API-Key": ADMIN}, json={"wallet_address": WALLET})
        assert registered.status_code == 201, registered.text
        borrower_id, key = registered.json()["id"], registered.json()["api_key"]

        def submit(idempotency_key: str) -> httpx.Response:
            headers = {"X-API-Key": key, "Idempotency-Key": idempotency_key}
            return client.post("/v1/borrowers/me/kyc", headers=headers, json=submission)

        with served(_identity_provider(api_url), provider_port):
            # pending, or already the verdict when the provider's webhook (sent at once) was applied before the
            # answer's read of the applicant
            assert submit(str(uuid.uuid4())).json()["state"] in ("pending", "approved")
            deadline = time.monotonic() + 30  # the provider's signed verdict arrives moments later
            while _kept(database, borrower_id)[1] is not KycState.APPROVED:
                assert time.monotonic() < deadline, _kept(database, borrower_id)
                time.sleep(0.05)
        verified = _kept(database, borrower_id)
        assert verified[0] == 1
        assert verified[2] is not None

        retried = str(uuid.uuid4())
        down = submit(retried)  # nothing listens on the provider's port
        assert down.status_code == 503, down.text
        assert down.headers["content-type"] == problems.PROBLEM_JSON
        assert down.headers["Retry-After"] == str(problems.IDENTITY_RETRY_AFTER_SECONDS)
        assert down.json()["type"] == problems.PROBLEM_BASE + "identity-unavailable"
        assert str(provider_port) not in down.text  # nothing of the provider's address
        assert _kept(database, borrower_id) == verified

        with served(_identity_provider(api_url, forgets_applicants=True), provider_port):
            halfway = submit(str(uuid.uuid4()))  # the applicant is created, its verification refused
        assert halfway.status_code == 503, halfway.text
        assert halfway.json()["type"] == problems.PROBLEM_BASE + "identity-unavailable"
        assert _kept(database, borrower_id) == verified  # the applicant withdrawn, the identity put back

        # retried through the outage as the 503 says: no applicant made, none counted against the day's limit (5)
        assert [submit(str(uuid.uuid4())).status_code for _ in range(4)] == [503] * 4

        with served(_identity_provider(api_url), provider_port):
            back = submit(retried)  # the 503 was not kept: the same key runs again
            assert back.status_code == 200, back.text
            assert back.headers.get(idempotency.REPLAYED_HEADER) is None
            assert back.json()["state"] in ("pending", "approved")
            assert _kept(database, borrower_id)[0] == 2
    database.dispose()
