"""Two changes of a provider's loan-events webhook URL at once, on a real PostgreSQL: the second waits for the
first's transaction and its ``provider-changed`` audit entry says it changed from the URL the first set. Before
(fixed 2026-11-29) the second read the row without a lock, before the first committed, and its entry said it
changed from the URL the first had already replaced."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from providers.destinations import PinnedTransport
from store.compliance import AuditEntryRow
from store.db import Database
from store.providers import ProviderRegistrationRow, ProviderRepository, audit_url
from tests.integration.providers.support import GUARD, SECRET, stored_registry

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

FIRST, OTHERS, MINE = "http://127.0.0.1:9/first", "http://127.0.0.1:9/others", "http://127.0.0.1:9/mine"


async def test_a_webhook_change_waits_for_another_and_audits_what_it_replaced(
    postgres_schema: Callable[[str], str],
) -> None:
    database = Database(postgres_schema("webhook_change_race"))
    database.migrate()
    with database.unit_of_work() as uow:
        config = {"base_url": "http://127.0.0.1:9", "secret": SECRET}
        uow.session.add(
            ProviderRegistrationRow(
                provider_id="bank",
                kind="http",
                config=config,
                enabled=True,
                created_at=datetime.now(UTC),
                webhook_url=FIRST,
            )
        )
        uow.commit()
    try:
        async with httpx.AsyncClient(transport=PinnedTransport(GUARD)) as http:
            registry = stored_registry(database, http)
            with database.unit_of_work() as other:  # another process's change, under way: its row locked
                row = ProviderRepository(other.session).registration("bank", for_update=True)
                assert row is not None
                row.webhook_url = OTHERS
                ProviderRepository(other.session).webhook_changed(row, FIRST, datetime.now(UTC), "admin:other")
                other.session.flush()
                mine = asyncio.create_task(registry.set_webhook_url("bank", MINE, actor="admin:mine"))
                await asyncio.sleep(0.5)  # this process reads the row meanwhile (before: unlocked, FIRST)
                assert not mine.done()
                other.commit()
            await asyncio.wait_for(mine, 10)
        with database.unit_of_work() as uow:
            kind = AuditEntryRow.kind == "provider-changed"
            entries = uow.session.scalars(select(AuditEntryRow).where(kind).order_by(AuditEntryRow.id)).all()
            changes = [(entry.data["from"], entry.data["to"], entry.data["by"]) for entry in entries]
            stored = uow.session.get(ProviderRegistrationRow, "bank")
            assert stored is not None
            assert stored.webhook_url == MINE
    finally:
        database.dispose()
    assert changes == [
        (audit_url(FIRST), audit_url(OTHERS), "admin:other"),
        (audit_url(OTHERS), audit_url(MINE), "admin:mine"),
    ]
