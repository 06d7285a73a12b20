"""The personal-data key store failing (KMS unreachable or throttled, or a CREDITMESH_PII_MASTER_KEY other than the
one the keys were wrapped under), served over real HTTP on SQLite: the borrower's routes that do not use the
identity (webhook, credit profile) answer as usual — no key is asked for — and those that open it, or destroy its
key, answer 503 ``key-store-unavailable`` problem+json with Retry-After instead of a 500."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from aggregator.borrower_accounts import BorrowerAccounts
from aggregator.borrowers import BorrowerFiles
from api.auth import ensure_bootstrap_admin
from api.deps import CurrentBorrower
from chain.devnet import free_port
from compliance.errors import PiiError
from compliance.kyc import IdentityDocument, IdentityProfile, LocalKycProvider
from store.borrowers import SqlBorrowerStore
from store.db import Database
from store.keystore import SqlKeyStore
from tests.support.kyc_api import kyc_app
from tests.support.served import served

pytestmark = pytest.mark.integration

ADMIN = "cm_admin_" + "k" * 40
IDENTITY = IdentityProfile("Augusta", "Byron-King", date(1985, 12, 10), "US-FL")
DOCUMENT = IdentityDocument("passport", "P7654321", "Augusta", "Byron-King", date(1985, 12, 10), "US", date(2031, 1, 1))


class _KmsDown:
    """A key store that cannot be reached: every call fails as ``compliance.kms.KmsKeyStore`` fails then."""

    def __init__(self) -> None:
        self.calls = 0

    def _down(self, subject_id: str) -> bytes:
        self.calls += 1
        raise PiiError("KMS unreachable: EndpointConnectionError")

    create_key = destroy_key = _down
    data_key = _down


@pytest.fixture
def served_app(tmp_path: Path) -> Iterator[tuple[FastAPI, str, str, str]]:
    database = Database(f"sqlite:///{tmp_path / 'creditmesh.db'}")
    database.migrate()
    ensure_bootstrap_admin(database, ADMIN)
    app = kyc_app(database, tmp_path, free_port(), "kyc-secret-key-store-outage")

    @app.get("/v1/test/identity")  # a route that uses the identity, as the credit request's and the accept's do
    async def identity(borrower: CurrentBorrower) -> str:
        return "erased" if borrower.identity is None else borrower.identity.last_name

    with served(app, free_port()) as url:
        response = httpx.post(
            f"{url}/v1/borrowers", headers={"X-API-Key": ADMIN}, json={"wallet_address": "0x" + "6b" * 20}
        )
        assert response.status_code == 201, response.text
        borrower_id, key = response.json()["id"], response.json()["api_key"]
        files: BorrowerFiles = app.state.platform.borrowers
        asyncio.run(files.verify_identity(borrower_id, IDENTITY, DOCUMENT, LocalKycProvider(b"s")))
        BorrowerAccounts(SqlBorrowerStore(database)).set_webhook(borrower_id, "https://hooks.example/b", "sealed")
        yield app, url, borrower_id, key
    database.dispose()


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "30"
    assert response.json()["type"].endswith("/key-store-unavailable")
    assert "KMS" not in response.text  # what failed is logged, not shown


@pytest.mark.parametrize("failure", ["kms-down", "master-key-changed"])
def test_a_failing_key_store_is_a_503_only_where_the_identity_is_used(
    served_app: tuple[FastAPI, str, str, str], tmp_path: Path, failure: str
) -> None:
    app, url, borrower_id, key = served_app
    borrower = {"X-API-Key": key}
    assert httpx.get(f"{url}/v1/test/identity", headers=borrower).json() == "Byron-King"
    database, files = app.state.platform.database, app.state.platform.borrowers
    down = _KmsDown()
    keys = down if failure == "kms-down" else SqlKeyStore(f"sqlite:///{tmp_path / 'keys.db'}", b"n" * 32)
    app.state.platform.borrowers = BorrowerFiles(SqlBorrowerStore(database), keys)  # type: ignore[arg-type]

    assert httpx.get(f"{url}/v1/borrowers/me/webhook", headers=borrower).json() == {
        "url": "https://hooks.example/b",
        "secret": None,
    }
    profile = httpx.put(f"{url}/v1/borrowers/me/credit-profile", headers=borrower, json={"housing": "own"})
    assert profile.status_code == 200, profile.text
    assert httpx.delete(f"{url}/v1/borrowers/me/webhook", headers=borrower).status_code == 204
    assert down.calls == 0  # none of them asked the key store

    _unavailable(httpx.get(f"{url}/v1/test/identity", headers=borrower))
    if failure == "kms-down":  # the erasure cannot destroy the key: 503, nothing erased
        _unavailable(httpx.delete(f"{url}/v1/borrowers/{borrower_id}/identity", headers={"X-API-Key": ADMIN}))
        assert down.calls == 2
    app.state.platform.borrowers = files  # the key store back: the identity is there, as it was
    assert httpx.get(f"{url}/v1/test/identity", headers=borrower).json() == "Byron-King"
