"""The read-only database URL (``CREDITMESH_DATABASE_READONLY_URL``) on real PostgreSQL: the reconciliation lists and
reports read from it (here a second schema standing in for a replica, holding a run the primary does not have),
everything else from the primary; nothing can be written through it; without it, reporting reads use the primary."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from api import problems
from api.auth import ensure_bootstrap_admin
from api.reconcile_jobs import start_run
from api.routers import reconciliations
from api.settings import Settings
from store.db import Database

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ADMIN = "cm_admin_readonly_tests"

Setup = tuple[httpx.AsyncClient, Database, str, str]


@pytest.fixture
async def reporting(postgres_schema: Callable[[str], str]) -> AsyncIterator[Setup]:
    primary_url, replica_url = postgres_schema("readonly_primary"), postgres_schema("readonly_replica")
    primary, replica = Database(primary_url), Database(replica_url)
    primary.migrate()
    replica.migrate()
    ensure_bootstrap_admin(primary, ADMIN)
    on_primary = start_run(primary, "admin:primary")
    on_replica = start_run(replica, "admin:replica")
    replica.dispose()
    database = Database(primary_url, readonly_url=replica_url)
    app = FastAPI()
    problems.install(app)
    app.include_router(reconciliations.router)
    app.state.platform = SimpleNamespace(database=database, chains={}, settings=Settings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test", headers={"X-API-Key": ADMIN}) as c:
        yield c, database, on_primary, on_replica
    database.dispose()
    primary.dispose()


async def test_reporting_reads_go_to_the_read_only_url_and_nothing_is_written_there(reporting: Setup) -> None:
    client, database, on_primary, on_replica = reporting
    listed = await client.get("/v1/reconciliations")
    assert listed.status_code == 200, listed.text
    assert [run["id"] for run in listed.json()["items"]] == [on_replica], "the list is read from the replica"
    report = await client.get(f"/v1/reconciliations/{on_replica}/report", params={"format": "json"})
    assert report.status_code == 200, report.text
    assert on_replica in report.text
    one = await client.get(f"/v1/reconciliations/{on_primary}")
    assert one.status_code == 200, "a single run (polled right after it starts) is read from the primary"

    with database.read_only() as uow, pytest.raises(DBAPIError, match="read-only transaction"):
        uow.session.execute(sa.text("UPDATE reconciliation_runs SET status = 'failed'"))


async def test_without_a_read_only_url_reporting_reads_use_the_primary(
    postgres_schema: Callable[[str], str],
) -> None:
    url = postgres_schema("readonly_fallback")
    database = Database(url, readonly_url=url)  # the same URL: one engine
    try:
        database.migrate()
        run_id = start_run(database, "admin:primary")
        assert database.reader_sessions is database.sessions
        with database.read_only() as uow:
            assert uow.session.scalar(sa.text("SELECT id FROM reconciliation_runs")) == run_id
    finally:
        database.dispose()
