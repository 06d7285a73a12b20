"""A provider's registration, the change of its loan-events webhook URL and its deregistration through the API each
write an audit entry in the same transaction (in-process ASGI, a real SQLite database, a real simulated lender over
HTTP): who, which provider, what it was registered with or what changed — never its HMAC secret, a configuration
field its adapter does not name safe, or a URL's path. Before (fixed 2026-11-29) only the provider's API key left a
trace in the audit log."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.auth import Role, ensure_key, list_keys
from providers.destinations import PinnedTransport
from providers.registry import ENTRY_POINT_GROUP, PluginLoader
from providers.sim.fleet import SimLender
from store.compliance import AuditEntryRow
from store.db import Database
from tests.integration.providers.support import GUARD, SECRET, providers_api, registration, sim_server, stored_registry

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ADMIN = "cm_admin_registration_audit"
PROVIDER_KINDS = ("provider-registered", "provider-changed", "provider-deregistered")  # compliance.audit.AuditKind


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sim_server([SimLender(lender_id="late-bank", secret=SECRET)], Path(tmp_path_factory.mktemp("sim"))) as base:
        yield base


def _entries(database: Database) -> list[tuple[str, str, dict[str, Any]]]:
    with database.unit_of_work() as uow:
        rows = uow.session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.kind.in_(PROVIDER_KINDS)).order_by(AuditEntryRow.id)
        )
        return [(row.kind, row.subject, dict(row.data)) for row in rows]


async def test_registration_change_and_deregistration_are_audited_without_secrets(sim: str, tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'providers.db'}")
    database.migrate()
    ensure_key(database, ADMIN, Role.ADMIN, None, "test admin")
    (admin_key,) = list_keys(database, None, 5, Role.ADMIN, False)
    by = f"admin:{admin_key.key_id}"
    admin = {"X-API-Key": ADMIN}
    try:
        async with httpx.AsyncClient(transport=PinnedTransport(GUARD)) as http:
            app = providers_api(stored_registry(database, http), database)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as api:
                body = registration(sim, webhook_url=f"{sim}/events")
                created = await api.post("/v1/providers", json=body, headers=admin)
                assert created.status_code == 201, created.text
                path = "/v1/providers/late-bank/loan-events-webhook"
                assert (await api.put(path, json={"url": f"{sim}/v2/events"}, headers=admin)).status_code == 200
                assert (await api.delete("/v1/providers/late-bank", headers=admin)).status_code == 204
                again = await api.post("/v1/providers", json=registration(sim), headers=admin)
                assert again.status_code == 201
    finally:
        entries = _entries(database)
        database.dispose()

    assert [(kind, subject) for kind, subject, _ in entries] == [
        ("provider-registered", "late-bank"),
        ("provider-changed", "late-bank"),
        ("provider-deregistered", "late-bank"),
        ("provider-registered", "late-bank"),
    ]
    registered, changed, deregistered, registered_again = (data for _, _, data in entries)
    assert registered["by"] == by
    assert registered["kind"] == "http"
    lender = registration(sim)["config"]["base_url"]
    assert registered["config"] == {"base_url": _url(lender), "withheld": ["secret_sealed"]}
    assert registered["capabilities"]["assets"] == ["USDC"]
    assert registered["webhookUrl"] == _url(f"{sim}/events")
    assert registered["registeredAgain"] is False
    assert registered_again["registeredAgain"] is True
    assert changed == {
        "providerId": "late-bank",
        "changed": "webhookUrl",
        "from": _url(f"{sim}/events"),
        "to": _url(f"{sim}/v2/events"),
        "by": by,
    }
    assert deregistered == {"providerId": "late-bank", "kind": "http", "quotesWithdrawn": 0, "by": by}
    written = json.dumps(entries)
    assert SECRET not in written
    assert "/events" not in written  # no URL's path
    assert lender not in written


def _url(url: str) -> dict[str, str]:
    """What an audit entry writes of ``url`` (``http://127.0.0.1:<port>/…``): its origin, the whole URL's hash."""
    return {"origin": "/".join(url.split("/", 3)[:3]), "sha256": hashlib.sha256(url.encode()).hexdigest()}


async def test_a_plugins_configuration_is_withheld_but_for_its_safe_fields(tmp_path: Path) -> None:
    """A plugin's registration whose safe field holds a URL no port can be read from (``http://host:abc``) is
    registered (201) and audited with that URL's hash; its other fields are named, not written. Before (fixed
    2026-11-29) the audit summary raised on the port and the registration answered 500."""
    database = Database(f"sqlite:///{tmp_path / 'providers.db'}")
    database.migrate()
    ensure_key(database, ADMIN, Role.ADMIN, None, "test admin")
    plugins = PluginLoader([EntryPoint("audited", "tests.unit.providers.plugins:AuditedAdapter", ENTRY_POINT_GROUP)])
    config = {"endpoint": "http://host:abc", "key": "sk_live_abc", "headers": {"Authorization": "Bearer tok"}}
    body = {"provider_id": "plugged", "kind": "audited", "config": config}
    try:
        async with httpx.AsyncClient(transport=PinnedTransport(GUARD)) as http:
            app = providers_api(stored_registry(database, http, plugins), database)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as api:
                created = await api.post("/v1/providers", json=body, headers={"X-API-Key": ADMIN})
    finally:
        entries = _entries(database)
        database.dispose()

    assert created.status_code == 201, created.text
    ((kind, subject, data),) = entries
    assert (kind, subject) == ("provider-registered", "plugged")
    digest = hashlib.sha256(b"http://host:abc").hexdigest()
    assert data["config"] == {"endpoint": {"origin": None, "sha256": digest}, "withheld": ["headers", "key"]}
    assert "sk_live_abc" not in json.dumps(entries)
    assert "Bearer tok" not in json.dumps(entries)
