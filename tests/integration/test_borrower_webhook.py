"""A borrower's webhook for its loan events (in-process ASGI, real SQLite): an internal address or a URL with a
query is refused (problem+json), a public one (loopback is allowed in local runs) is stored with a new signing
secret shown once and sealed at rest, which the relay's destinations open; deleting it stops the events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from aggregator.event_destinations import EventDestinations
from api import problems
from api.deps import get_borrower_account
from api.routers import borrowers as borrowers_router
from api.settings import Settings
from providers.secrets import SecretBox
from store.api import BorrowerRow
from store.db import Database
from store.relay import SqlRecipientDirectory
from tests.support.ledger_facts import add_borrower

pytestmark = pytest.mark.integration


@asynccontextmanager
async def borrowers_api(tmp_path: Path, settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Database, str]]:
    """The borrowers router under ``settings`` on a migrated SQLite database with one borrower signed in: (the
    client, the database, the borrower's id)."""
    database = Database(f"sqlite:///{tmp_path / 'borrowers.db'}")
    database.migrate()
    borrower_id = add_borrower(database)
    app = FastAPI()
    problems.install(app)
    app.include_router(borrowers_router.router)
    app.state.platform = SimpleNamespace(database=database, settings=settings)
    app.dependency_overrides[get_borrower_account] = lambda: SimpleNamespace(account=SimpleNamespace(id=borrower_id))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
            yield client, database, borrower_id
    finally:
        database.dispose()


async def test_a_borrower_sets_reads_and_deletes_its_webhook(tmp_path: Path) -> None:
    settings = Settings()
    destinations = EventDestinations(SecretBox.from_master_key(bytes.fromhex(settings.pii_master_key)))
    async with borrowers_api(tmp_path, settings) as (client, database, borrower_id):
        recipient = f"borrower:{borrower_id}"
        assert (await client.get("/v1/borrowers/me/webhook")).status_code == 404
        for refused in ("http://169.254.169.254/x", "http://10.1.2.3/events", "https://lender.test/e?x=1"):
            answer = await client.put("/v1/borrowers/me/webhook", json={"url": refused})
            assert answer.status_code == 422, refused
            assert answer.headers["content-type"].startswith("application/problem+json")
        with database.unit_of_work() as uow:
            assert destinations.resolve(SqlRecipientDirectory(uow.session), recipient) is None

        url = "http://127.0.0.1:8999/loan-events"
        created = await client.put("/v1/borrowers/me/webhook", json={"url": url})
        assert created.status_code == 200, created.text
        secret = created.json()["secret"]
        assert secret.startswith("whsec_")
        with database.unit_of_work() as uow:
            row = uow.session.get_one(BorrowerRow, borrower_id)
            assert row.webhook_url == url
            assert row.webhook_secret_sealed is not None
            assert secret not in row.webhook_secret_sealed
            destination = destinations.resolve(SqlRecipientDirectory(uow.session), recipient)
        assert destination is not None
        assert (destination.url, destination.secret) == (url, secret)
        shown = (await client.get("/v1/borrowers/me/webhook")).json()
        assert shown == {"url": url, "secret": None}

        assert (await client.delete("/v1/borrowers/me/webhook")).status_code == 204
        with database.unit_of_work() as uow:
            assert destinations.resolve(SqlRecipientDirectory(uow.session), recipient) is None


async def test_production_takes_a_borrowers_webhook_on_https_only(tmp_path: Path) -> None:
    """A borrower's loan events name its loans and payments: in production a plain http:// URL is refused (422), as
    lenders' URLs are; an https:// one passes that rule."""
    production = Settings().model_copy(update={"environment": "production"})
    async with borrowers_api(tmp_path, production) as (client, _, _):
        refused = await client.put("/v1/borrowers/me/webhook", json={"url": "http://127.0.0.1:8999/loan-events"})
        assert refused.status_code == 422, refused.text
        assert "must be an https:// URL in production" in refused.json()["detail"]
        # https:// passes the rule and reaches the address guard (production allows no loopback)
        guarded = await client.put("/v1/borrowers/me/webhook", json={"url": "https://127.0.0.1:8999/loan-events"})
        assert guarded.status_code == 422, guarded.text
        assert "https://" not in guarded.json()["detail"]
        assert "loopback" in guarded.json()["detail"]
