"""A provider's registration, the change of its loan-events webhook URL and its deregistration through the API each
write an audit entry in the same transaction (in-process ASGI, a real SQLite database, a real simulated lender over
HTTP): who, which provider, what it was registered with or what changed — never its HMAC secret. Before (fixed
2026-11-29) only the provider's API key left a trace in the audit log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.auth import Role, ensure_key, list_keys
from providers.destinations import PinnedTransport
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
    assert registered["config"] == {"base_url": registration(sim)["config"]["base_url"], "withheld": ["secret_sealed"]}
    assert registered["capabilities"]["assets"] == ["USDC"]
    assert registered["webhookUrl"] == f"{sim}/events"
    assert registered["registeredAgain"] is False
    assert registered_again["registeredAgain"] is True
    assert changed == {
        "providerId": "late-bank",
        "changed": "webhookUrl",
        "from": f"{sim}/events",
        "to": f"{sim}/v2/events",
        "by": by,
    }
    assert deregistered == {"providerId": "late-bank", "kind": "http", "quotesWithdrawn": 0, "by": by}
    written = json.dumps(entries)
    assert SECRET not in written
