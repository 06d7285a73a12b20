"""Production registers lenders over https:// only (``AdapterContext.https_only``, set when
``CREDITMESH_ENVIRONMENT=production``): a plain http:// ``base_url`` or ``webhook_url`` is a 422 naming the rule,
through the API on a real database, and one stored before is not loaded there; local runs (devnets, tests) keep
plain http:// on loopback."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.auth import Role, ensure_key
from compliance.adverse_action import Party
from providers.destinations import PinnedTransport
from providers.registry import ProviderRegistry
from store.db import Database
from tests.integration.providers.support import GUARD, SECRET, providers_api, stored_registry

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ADMIN = {"X-API-Key": "cm_admin_https_only"}
HTTPS_LENDER = "https://127.0.0.1:9/lenders/acme"  # loopback, which the test guard allows: never called here


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, ProviderRegistry]]:
    database = Database(f"sqlite:///{tmp_path / 'providers.db'}")
    database.migrate()
    ensure_key(database, ADMIN["X-API-Key"], Role.ADMIN, None, "test admin")
    async with httpx.AsyncClient(transport=PinnedTransport(GUARD)) as http:
        registry = stored_registry(database, http)
        # what production builds
        registry.context = dataclasses.replace(registry.context, https_only=True, creditor_required=True)
        transport = httpx.ASGITransport(app=providers_api(registry, database))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield client, registry
    database.dispose()


def _body(base_url: str, webhook_url: str | None = None) -> dict[str, object]:
    return {
        "provider_id": "acme",
        "kind": "http",
        "config": {"base_url": base_url, "secret": SECRET},
        "capabilities": {"assets": ["USDC"]},
        "webhook_url": webhook_url,
        "legal_name": "Acme Lending, Inc.",
        "address": "5 Acme Road, Springfield, IL 62701",
    }


async def test_production_refuses_a_plain_http_base_url(api: tuple[httpx.AsyncClient, ProviderRegistry]) -> None:
    client, registry = api
    refused = await client.post("/v1/providers", json=_body("http://127.0.0.1:9/lenders/acme"), headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["detail"].startswith(
        "acme: base_url must be an https:// URL in production (CREDITMESH_ENVIRONMENT=production)"
    )
    assert "acme" not in registry


async def test_production_refuses_a_plain_http_webhook_url(api: tuple[httpx.AsyncClient, ProviderRegistry]) -> None:
    client, _ = api
    refused = await client.post("/v1/providers", json=_body(HTTPS_LENDER, "http://127.0.0.1:9/events"), headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"].startswith("acme: webhook_url must be an https:// URL in production")

    created = await client.post("/v1/providers", json=_body(HTTPS_LENDER, "https://127.0.0.1:9/events"), headers=ADMIN)
    assert created.status_code == 201, created.text
    changed = await client.put(
        "/v1/providers/acme/loan-events-webhook", json={"url": "http://127.0.0.1:9/other"}, headers=ADMIN
    )
    assert changed.status_code == 422, changed.text
    assert "webhook_url must be an https:// URL in production" in changed.json()["detail"]


async def test_production_refuses_a_lender_without_its_legal_name_and_address(
    api: tuple[httpx.AsyncClient, ProviderRegistry],
) -> None:
    """Every adverse-action notice given for a lender names the creditor it lends as (12 CFR 1002.9(g)): in
    production a lender registered now must give its legal name and postal address (422 naming them otherwise)."""
    client, registry = api
    unnamed = {key: value for key, value in _body(HTTPS_LENDER).items() if key not in {"legal_name", "address"}}
    refused = await client.post("/v1/providers", json=unnamed, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == (
        "acme: give the lender's legal_name and postal address: in production every adverse-action notice given for "
        "it names them (12 CFR 1002.9(g))"
    )
    assert "acme" not in registry
    created = await client.post("/v1/providers", json=_body(HTTPS_LENDER), headers=ADMIN)
    assert created.status_code == 201, created.text
    assert registry.get_provider("acme").creditor() == Party("Acme Lending, Inc.", "5 Acme Road, Springfield, IL 62701")


async def test_local_runs_keep_plain_http(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'local.db'}")
    database.migrate()
    ensure_key(database, ADMIN["X-API-Key"], Role.ADMIN, None, "test admin")
    async with httpx.AsyncClient(transport=PinnedTransport(GUARD)) as http:
        registry = stored_registry(database, http)
        transport = httpx.ASGITransport(app=providers_api(registry, database))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            body = _body("http://127.0.0.1:9/lenders/acme", "http://127.0.0.1:9/events")
            created = await client.post("/v1/providers", json=body, headers=ADMIN)
        assert created.status_code == 201, created.text

        # the same registration, stored before production refused plain http, is not loaded there: never called
        production = stored_registry(database, http)
        production.context = dataclasses.replace(production.context, https_only=True)
        await production.load_persisted()
        assert "acme" not in production
        assert production.adapters() == []
        assert "base_url must be an https:// URL in production" in production.load_errors["acme"]
    database.dispose()
