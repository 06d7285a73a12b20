"""``/readyz`` while a process builds its sanctions name index at start-up (the whole SDN list: about a second of CPU):
not ready, naming it, so a load balancer sends the new process nothing it would make wait; a probe waits for the
start-up's build (up to its timeout) rather than starting a second one; ready once it is built. A real SQLite
database and the imported OFAC lists, the route over in-process ASGI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from api import problems
from api.routers import health
from api.sanctions_reload import warm_name_index
from compliance import ComplianceService
from compliance.jurisdiction import load_rules
from compliance.sanctions import names as name_matching
from compliance.sanctions.lists import load_newest
from compliance.sanctions.screening import SanctionsScreen
from store.db import Database

pytestmark = pytest.mark.integration


@pytest.fixture
async def probed(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, ComplianceService]]:
    database = Database(f"sqlite:///{tmp_path / 'readyz.db'}")
    database.migrate()
    addresses, names = load_newest()
    compliance = ComplianceService(
        SanctionsScreen(addresses, names), load_rules(), clock=lambda: datetime.now(UTC), inputs_key=bytes(32)
    )
    app = FastAPI()
    problems.install(app)
    app.include_router(health.router)
    app.state.platform = SimpleNamespace(database=database, compliance=compliance, readiness_redis=None, chains={})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield client, compliance
    database.dispose()


async def test_not_ready_while_the_name_index_is_built_and_ready_once_it_is(
    probed: tuple[httpx.AsyncClient, ComplianceService], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, compliance = probed
    builds: list[int] = []
    build = name_matching.NameIndex.__init__

    def counted(index: name_matching.NameIndex, *args: object, **kwargs: object) -> None:
        builds.append(threading.get_ident())
        build(index, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(name_matching.NameIndex, "__init__", counted)
    start_up = asyncio.create_task(asyncio.to_thread(warm_name_index, compliance))  # as the app's lifespan starts it
    await asyncio.sleep(0.05)

    monkeypatch.setattr(health, "NAME_INDEX_WAIT_SECONDS", 0.01)  # a probe gives up long before the build ends
    building = await client.get("/readyz")
    assert building.status_code == 503, building.text
    assert building.headers["content-type"] == "application/problem+json"
    assert building.json()["failing"] == ["sanctions_lists"]
    assert building.json()["checks"]["sanctions_lists"] == "name index building"
    assert building.json()["detail"] == "not ready: sanctions_lists name index building"
    assert not compliance.screen.name_index_built

    monkeypatch.setattr(health, "NAME_INDEX_WAIT_SECONDS", 60.0)  # this probe waits for the start-up's build
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["sanctions_lists"] == "ok"
    assert compliance.screen.name_index_built
    await start_up
    assert len(builds) == 1, "the probes waited for the start-up's build and started none of their own"
    assert (await client.get("/readyz")).json()["status"] == "ready"
