"""A process listens only once its sanctions name index is built (about a second of CPU for the whole SDN list): a
real uvicorn server of the app, whose first answer to ``/healthz`` — what ``creditmesh serve``'s balancer, Kubernetes
and ``creditmesh run`` wait for — comes with the index already there, so no request meets a process that would make
it wait for the build. The platform is the lifespan's one stand-in (no chains, no database); the compliance service,
the OFAC lists, uvicorn and the socket are real."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn

import api.app
from api.settings import Settings
from chain.devnet import free_port
from compliance import ComplianceService
from compliance.jurisdiction import load_rules
from compliance.sanctions.lists import load_newest
from compliance.sanctions.screening import SanctionsScreen

pytestmark = pytest.mark.integration


class _Acceptance:
    async def run_recovery(self) -> None:
        await asyncio.Event().wait()  # until cancelled, as the platform's recovery loop


class _Platform(SimpleNamespace):
    async def close(self) -> None:
        self.closed = True


@pytest.mark.asyncio(loop_scope="session")
async def test_the_first_answer_comes_once_the_name_index_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    addresses, names = load_newest()
    compliance = ComplianceService(
        SanctionsScreen(addresses, names), load_rules(), clock=lambda: datetime.now(UTC), inputs_key=bytes(32)
    )
    settings = Settings(workers="none", sanctions_reload_seconds=0, providers_reload_seconds=0)
    platform = _Platform(
        settings=settings,
        database=None,
        chains={},
        providers=None,
        acceptance=_Acceptance(),
        compliance=compliance,
        closed=False,
    )

    async def built(_: Settings) -> Any:
        return platform

    monkeypatch.setattr(api.app, "build_platform", built)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api.app.create_app(settings), port=port, log_level="error"))
    serving = asyncio.create_task(server.serve())
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(3_000):
                try:
                    first = await client.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                except httpx.ConnectError:
                    await asyncio.sleep(0.005)
                    continue
                break
            else:
                raise AssertionError("the server never answered")
        assert first.status_code == 200
        assert compliance.screen.name_index_built, "the process answered before its name index was built"
    finally:
        server.should_exit = True
        await serving
    assert platform.closed
