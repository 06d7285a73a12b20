"""Values PostgreSQL cannot hold are the request's fault, named, and nothing is kept: a NUL character reaching a
statement (a path parameter here) is a 422 problem, not a 500; a jurisdiction that upper-cases past its column
(``ß`` → ``SS``) is refused by its pattern before anything is stored. Real routers on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from api import problems
from api.auth import ensure_bootstrap_admin
from api.routers import borrowers
from api.settings import Settings
from store.api import BorrowerRow
from store.db import Database

pytestmark = pytest.mark.integration

ADMIN = "cm_admin_unstorable_values_tests"


async def test_a_value_postgresql_cannot_hold_is_a_422_and_nothing_is_kept(
    postgres_schema: Callable[[str], str],
) -> None:
    database = Database(postgres_schema("unstorable_values"))
    database.migrate()
    ensure_bootstrap_admin(database, ADMIN)
    app = FastAPI()
    problems.install(app)
    app.include_router(borrowers.router)
    app.state.platform = SimpleNamespace(database=database, providers={}, settings=Settings())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            admin = {"X-API-Key": ADMIN}
            nul = await client.delete("/v1/borrowers/a%00b/identity", headers=admin)
            assert nul.status_code == 422, nul.text
            assert nul.headers["content-type"] == problems.PROBLEM_JSON
            assert nul.json()["type"] == problems.PROBLEM_BASE + "unstorable-value"
            assert "SELECT" not in nul.text, "the statement is not shown"

            wallet = "0x" + "7c" * 20
            german = await client.post("/v1/borrowers", json={"wallet_address": wallet, "jurisdiction": "ßßßßßßßß"})
            assert german.status_code == 401  # no key: refused before anything
            german = await client.post(
                "/v1/borrowers", json={"wallet_address": wallet, "jurisdiction": "ßßßßßßßß"}, headers=admin
            )
            assert german.status_code == 422, german.text
            assert "jurisdiction" in german.text
            assert (
                await client.post(
                    "/v1/borrowers", json={"wallet_address": wallet, "jurisdiction": "us-ny"}, headers=admin
                )
            ).status_code == 201
        with database.unit_of_work() as uow:
            assert uow.session.scalar(select(func.count()).select_from(BorrowerRow)) == 1
    finally:
        database.dispose()
