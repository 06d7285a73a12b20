"""Admin ``GET /health`` (in-process ASGI) over real chain clients: a healthy anvil, a chain whose RPC answers HTML
with HTTP 200 and one whose RPC never answers. The page is served (200, ``degraded``) with each sick chain not ok and
its error named beside the healthy one, within the probe timeout however long the hanging chain would take."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from api import problems
from api.auth import Principal, Role
from api.deps import get_principal
from api.routers import health
from chain.client import ChainClient
from chain.config import ChainConfig
from chain.devnet import LOOPBACK
from tests.integration.chain.support import fresh_anvil
from tests.support.bad_rpc import bad_rpc

pytestmark = pytest.mark.integration


async def test_health_names_the_sick_chains_beside_the_healthy_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "PROBE_TIMEOUT_SECONDS", 1.0)
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read()

    server = await asyncio.start_server(never_answer, LOOPBACK, 0)
    hanging_url = f"http://{LOOPBACK}:{server.sockets[0].getsockname()[1]}"
    with fresh_anvil() as anvil:
        async with bad_rpc(31338) as stub:
            clients = {
                "ethereum-local": ChainClient(anvil.config(), timeout=10.0),
                "polygon-local": ChainClient(ChainConfig(name="polygon-local", chain_id=31338, rpc_urls=[stub.url])),
                "arbitrum-local": ChainClient(
                    ChainConfig(name="arbitrum-local", chain_id=31339, rpc_urls=[hanging_url]), timeout=10.0
                ),
            }
            app = FastAPI()
            problems.install(app)
            app.include_router(health.router)
            app.state.platform = SimpleNamespace(
                chains={name: SimpleNamespace(client=client) for name, client in clients.items()},
                compliance=SimpleNamespace(versions=lambda: {}),
            )
            app.dependency_overrides[get_principal] = lambda: Principal(Role.ADMIN, None)
            try:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
                    started = time.monotonic()
                    response = await http.get("/health")
                    elapsed = time.monotonic() - started
            finally:
                for client in clients.values():
                    await client.close()
                for writer in accepted:
                    writer.close()
                server.close()
                await server.wait_closed()
    assert response.status_code == 200
    page = response.json()
    assert page["status"] == "degraded"
    chains = page["chains"]
    assert chains["ethereum-local"]["ok"] is True
    assert chains["ethereum-local"]["head_block"] == 0
    assert chains["polygon-local"]["ok"] is False
    assert "RpcBadAnswer" in chains["polygon-local"]["last_error"]
    assert chains["arbitrum-local"]["ok"] is False
    assert chains["arbitrum-local"]["last_error"] == "no answer within 1.0 s"
    assert elapsed < 5  # the chains are asked at once, each within the probe timeout, not one after another's 10 s
