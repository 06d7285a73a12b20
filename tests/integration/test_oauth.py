"""OAuth2 client credentials (issue 17): an API key's holder gets a short-lived JWT (ES256 here, EdDSA locally) that
verifies with the published JWKS and is accepted wherever the key is (the same role check), until it expires, its key
is revoked or expires; a token for another audience or from another key is refused. In-process ASGI, real SQLite."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from fastapi import FastAPI

from api import problems
from api.auth import ApiKeyInfo, Role, ensure_bootstrap_admin, issue, key_info
from api.oauth import SigningKey, TokenService, local_signing_key, tokens_from_settings
from api.routers import api_keys, oauth
from api.settings import Settings
from store.api import ApiKeyRepository
from store.db import Database
from tests.integration.test_api_keys import probe

# the async tests run on the session's loop, where the ``setup`` fixture runs (the last test is synchronous)
pytestmark = pytest.mark.integration
on_the_session_loop = pytest.mark.asyncio(loop_scope="session")

ADMIN = "cm_admin_oauth_tests"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def _pem() -> str:
    key = generate_private_key(SECP256R1())
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Database, TokenService]]:
    database = Database(f"sqlite:///{tmp_path / 'oauth.db'}")
    database.migrate()
    ensure_bootstrap_admin(database, ADMIN)
    tokens = TokenService(SigningKey.from_pem(_pem()), "creditmesh", "creditmesh-api", timedelta(minutes=5))
    app = FastAPI()
    problems.install(app)
    for router in (oauth.router, api_keys.router, probe):
        app.include_router(router)
    app.state.platform = SimpleNamespace(database=database, providers={}, settings=Settings())
    app.state.tokens = tokens
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield client, database, tokens
    database.dispose()


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()} | FORM


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@on_the_session_loop
async def test_a_key_holder_gets_a_token_that_verifies_with_the_jwks_and_acts_as_the_key(
    setup: tuple[httpx.AsyncClient, Database, TokenService],
) -> None:
    client, database, _tokens = setup
    auditor = issue(database, Role.AUDITOR, None, "audit firm")
    response = await client.post(
        "/v1/oauth/token", content="grant_type=client_credentials", headers=_basic(auditor.info.key_id, auditor.key)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "auditor"
    assert response.headers["cache-control"] == "no-store"

    published = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert [key["kid"] for key in published] == [jwt.get_unverified_header(body["access_token"])["kid"]]
    assert published[0]["alg"] == "ES256"
    assert "d" not in published[0]  # the public key only
    claims = jwt.decode(
        body["access_token"], jwt.PyJWK(published[0]).key, algorithms=["ES256"], audience="creditmesh-api"
    )
    assert (claims["sub"], claims["role"], claims["iss"]) == (auditor.info.key_id, "auditor", "creditmesh")

    token = body["access_token"]
    assert (await client.get("/probe/auditor", headers=_bearer(token))).status_code == 200
    assert (await client.get("/probe/admin", headers=_bearer(token))).status_code == 403
    # client_secret_post, for an admin: its token manages keys like the admin key does
    listing = (await client.get("/v1/api-keys", headers={"X-API-Key": ADMIN})).json()["items"]
    admin_id = next(item["id"] for item in listing if item["bootstrap"])
    form = {"grant_type": "client_credentials", "client_id": admin_id, "client_secret": ADMIN}
    admin_token = (await client.post("/v1/oauth/token", data=form)).json()["access_token"]
    listed = await client.get("/v1/api-keys", headers=_bearer(admin_token))
    assert listed.status_code == 200
    assert {item["id"] for item in listed.json()["items"]} == {admin_id, auditor.info.key_id}


@on_the_session_loop
async def test_a_token_stops_when_it_expires_or_its_key_is_revoked_or_expires(
    setup: tuple[httpx.AsyncClient, Database, TokenService],
) -> None:
    client, database, tokens = setup
    lender = issue(database, Role.PROVIDER, "sim-bank", "lender", expires_at=datetime.now(UTC) + timedelta(seconds=90))
    # never beyond its key's expiry
    capped = await client.post(
        "/v1/oauth/token", content="grant_type=client_credentials", headers=_basic(lender.info.key_id, lender.key)
    )
    assert 0 < capped.json()["expires_in"] <= 90

    stale = tokens.issue(lender.info, None, now=datetime.now(UTC) - timedelta(minutes=6)).token
    refused = await client.get("/probe/provider", headers=_bearer(stale))
    assert refused.status_code == 401
    assert "expired" in refused.json()["detail"]
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]

    fresh = capped.json()["access_token"]
    assert (await client.get("/probe/provider", headers=_bearer(fresh))).status_code == 200
    assert (await client.delete(f"/v1/api-keys/{lender.info.key_id}", headers={"X-API-Key": ADMIN})).status_code == 200
    revoked = await client.get("/probe/provider", headers=_bearer(fresh))
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["detail"]
    again = await client.post(
        "/v1/oauth/token", content="grant_type=client_credentials", headers=_basic(lender.info.key_id, lender.key)
    )
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_client"

    auditor = issue(database, Role.AUDITOR, None, "short")
    token = tokens.issue(auditor.info, None).token
    lapsed = key_info(database, auditor.info.key_id)
    assert tokens.verify(token) == (auditor.info.key_id, Role.AUDITOR)
    with database.unit_of_work() as uow:
        row = ApiKeyRepository(uow.session).by_id(lapsed.key_id)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        uow.commit()
    expired_key = await client.get("/probe/auditor", headers=_bearer(token))
    assert expired_key.status_code == 401
    assert "expired" in expired_key.json()["detail"]


@on_the_session_loop
async def test_tokens_for_another_audience_or_from_another_key_are_refused(
    setup: tuple[httpx.AsyncClient, Database, TokenService],
) -> None:
    client, database, tokens = setup
    admin = issue(database, Role.ADMIN, None, "ops")
    elsewhere = TokenService(tokens.key, tokens.issuer, "some-other-api", tokens.ttl).issue(admin.info, None).token
    wrong_audience = await client.get("/probe/admin", headers=_bearer(elsewhere))
    assert wrong_audience.status_code == 401
    assert "audience" in wrong_audience.json()["detail"]

    other_key = SigningKey.from_pem(_pem())
    forged_kid = jwt.encode(
        jwt.decode(tokens.issue(admin.info, None).token, options={"verify_signature": False}),
        other_key.private_key,
        algorithm="ES256",
        headers={"kid": tokens.key.kid if tokens.key else ""},
    )
    assert (await client.get("/probe/admin", headers=_bearer(forged_kid))).status_code == 401
    unsigned = jwt.encode({"sub": admin.info.key_id, "role": "admin"}, "", algorithm="none")
    assert (await client.get("/probe/admin", headers=_bearer(unsigned))).status_code == 401
    assert (await client.get("/probe/admin", headers=_bearer("not-a-jwt"))).status_code == 401
    assert (await client.get("/probe/admin")).status_code == 401


@on_the_session_loop
async def test_a_request_carries_one_credential_and_a_malformed_one_is_named(
    setup: tuple[httpx.AsyncClient, Database, TokenService],
) -> None:
    client, database, tokens = setup
    admin = issue(database, Role.ADMIN, None, "ops")
    own_token = tokens.issue(admin.info, None).token
    key = {"X-API-Key": admin.key}
    assert (await client.get("/probe/admin", headers=key)).status_code == 200
    assert (await client.get("/probe/admin", headers=_bearer(own_token))).status_code == 200

    # both, even the key's own token, or a bad token beside a good key: never one of them picked
    for token in (own_token, "not-a-jwt"):
        both = await client.get("/probe/admin", headers=key | _bearer(token))
        assert both.status_code == 401
        assert both.json()["detail"] == "send one credential, X-API-Key or Authorization: Bearer, not both"
        assert both.headers["content-type"] == "application/problem+json"
    for empty in ("Bearer", "Bearer   ", "bearer "):
        for headers in ({"authorization": empty}, key | {"authorization": empty}):
            tokenless = await client.get("/probe/admin", headers=headers)
            assert tokenless.status_code == 401
            assert tokenless.json()["detail"] == "the Authorization: Bearer header carries no token"
            assert 'error="invalid_token"' in tokenless.headers["www-authenticate"]

    # beside a key, any other Authorization is refused as a second credential (a gateway's Basic, a bare word, an
    # empty one); alone, another scheme is named
    gateway = "Basic " + base64.b64encode(b"gateway:secret").decode()
    for other in (gateway, "K:|wsMX6=1ruvq2N", ""):
        beside = await client.get("/probe/admin", headers=key | {"authorization": other})
        assert beside.status_code == 401, other
        assert beside.json()["detail"] == "send one credential, X-API-Key or Authorization: Bearer, not both"
    for scheme in ("Basic", "Token", "Digest"):
        alone = await client.get("/probe/admin", headers={"authorization": f"{scheme} abc"})
        assert alone.status_code == 401
        assert alone.json()["detail"].startswith(f"Authorization scheme {scheme!r} is not accepted here")
        assert alone.headers["www-authenticate"] == 'ApiKey, Bearer realm="creditmesh"'


@on_the_session_loop
async def test_the_token_endpoint_answers_oauth_errors(setup: tuple[httpx.AsyncClient, Database, TokenService]) -> None:
    client, database, _ = setup
    auditor = issue(database, Role.AUDITOR, None, "x")
    cases: list[tuple[httpx.Headers | dict[str, str], str, int, str]] = [
        (_basic(auditor.info.key_id, "wrong"), "grant_type=client_credentials", 401, "invalid_client"),
        (_basic("key_0000000000000000", auditor.key), "grant_type=client_credentials", 401, "invalid_client"),
        (FORM, "grant_type=client_credentials", 401, "invalid_client"),
        (
            httpx.Headers({b"content-type": FORM["content-type"].encode(), b"authorization": b"Basic \xe9"}),
            "grant_type=client_credentials",
            401,
            "invalid_client",
        ),
        # the right secret with a client id that is not ASCII: refused like any other wrong id, never a 500
        (
            FORM,
            f"grant_type=client_credentials&client_id=%C3%A9t%C3%A9&client_secret={auditor.key}",
            401,
            "invalid_client",
        ),
        (_basic(auditor.info.key_id, auditor.key), "grant_type=password", 400, "unsupported_grant_type"),
        (_basic(auditor.info.key_id, auditor.key), "grant_type=client_credentials&scope=admin", 400, "invalid_scope"),
        ({"content-type": "application/json"}, '{"grant_type": "client_credentials"}', 400, "invalid_request"),
        (_basic(auditor.info.key_id, auditor.key), "grant_type=a&grant_type=b", 400, "invalid_request"),
    ]
    for headers, content, status, error in cases:
        response = await client.post("/v1/oauth/token", content=content, headers=headers)
        assert response.status_code == status, (content, response.text)
        assert response.json()["error"] == error
        assert response.headers["content-type"] == problems.PROBLEM_JSON


def test_local_runs_sign_with_eddsa_and_an_unconfigured_service_issues_nothing() -> None:
    local = tokens_from_settings(Settings())
    assert local.key is not None
    assert local.key.algorithm == "EdDSA"
    assert local.key.kid == local_signing_key().kid  # every local process signs with the same key
    info = ApiKeyInfo("key_1234567890abcdef", Role.BORROWER, "b-1", "b", datetime.now(UTC), None, None, False)
    token = local.issue(info, "borrower")
    assert local.verify(token.token) == ("key_1234567890abcdef", Role.BORROWER)
    configured = tokens_from_settings(Settings(jwt_signing_key=_pem()))
    assert configured.key is not None
    assert configured.key.algorithm == "ES256"
    assert TokenService(None, "i", "a", timedelta(minutes=5)).jwks() == {"keys": []}
