"""``GET /v1/loans/{id}/events`` (in-process ASGI, real SQLite): the loan's events in order with their delivery log;
a borrower and a provider see only their own deliveries, an admin every one, and another borrower no loan."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from api import problems
from api.auth import Principal, Role
from api.deps import get_principal
from api.pagination import encode_key_cursor
from api.routers import loan_events
from store.db import Database
from store.loan_ledger import apply_events
from store.outbox import OutboxDeliveryRow, SqlOutboxRepository
from tests.support.ledger_facts import CHAIN, LoanFacts

pytestmark = pytest.mark.integration


async def test_the_event_log_shows_each_reader_its_own_deliveries(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'events.db'}")
    database.migrate()
    loan = LoanFacts(loan_ref=11)
    borrower_id = loan.quoted_by(database, "sim-bank")
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, [loan.opened(), loan.repaid(5, 10**9, 0), loan.closed()])
        opened = SqlOutboxRepository(uow.session).events(loan.loan_id)[0]
        now = datetime.now(UTC)
        for recipient, status, error in (
            (f"borrower:{borrower_id}", "pending", "HTTP 503"),
            ("provider:sim-bank", "delivered", None),
        ):
            uow.session.add(
                OutboxDeliveryRow(
                    event_id=opened.id,
                    loan_id=loan.loan_id,
                    sequence=1,
                    recipient=recipient,
                    status=status,
                    attempts=3 if error else 1,
                    next_attempt_at=now,
                    last_status_code=503 if error else 200,
                    last_error=error,
                    created_at=now,
                    delivered_at=None if error else now,
                )
            )
        uow.commit()
    app = FastAPI()
    problems.install(app)
    app.include_router(loan_events.router)
    app.state.platform = SimpleNamespace(database=database)
    reader: list[Principal] = []
    app.dependency_overrides[get_principal] = lambda: reader[-1]
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:

            async def read(principal: Principal) -> httpx.Response:
                reader.append(principal)
                return await client.get(f"/v1/loans/{loan.loan_id}/events")

            as_admin = (await read(Principal(Role.ADMIN, None))).json()["items"]
            assert [(e["sequence"], e["type"]) for e in as_admin] == [
                (1, "loan.opened"),
                (2, "loan.repayment"),
                (3, "loan.closed"),
            ]
            assert {d["recipient"] for d in as_admin[0]["deliveries"]} == {
                f"borrower:{borrower_id}",
                "provider:sim-bank",
            }
            mine = (await read(Principal(Role.BORROWER, borrower_id))).json()["items"][0]["deliveries"]
            assert [(d["status"], d["attempts"], d["last_error"]) for d in mine] == [("pending", 3, "HTTP 503")]
            funded = (await read(Principal(Role.PROVIDER, "sim-bank"))).json()["items"][0]["deliveries"]
            assert [(d["recipient"], d["status"]) for d in funded] == [("provider:sim-bank", "delivered")]
            stranger = await read(Principal(Role.BORROWER, "someone-else"))
            assert stranger.status_code == 404
            assert stranger.headers["content-type"].startswith("application/problem+json")
    finally:
        database.dispose()


async def test_the_event_log_comes_a_page_at_a_time_in_the_loans_order(tmp_path: Path) -> None:
    """It was the whole log at once with ``next`` always null; now pages of ``limit`` (1–200, default 50) events
    in the loan's order, ``next`` the following page's URL until the last page."""
    database = Database(f"sqlite:///{tmp_path / 'events.db'}")
    database.migrate()
    loan = LoanFacts(loan_ref=12)
    loan.quoted_by(database, "sim-bank")
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, [loan.opened(), loan.repaid(5, 10**8, 0), loan.repaid(6, 10**8, 0)])
        apply_events(uow.session, CHAIN, [loan.repaid(7, 8 * 10**8, 0), loan.closed()])
        uow.commit()
    app = FastAPI()
    problems.install(app)
    app.include_router(loan_events.router)
    app.state.platform = SimpleNamespace(database=database)
    app.dependency_overrides[get_principal] = lambda: Principal(Role.PROVIDER, "sim-bank")
    path = f"/v1/loans/{loan.loan_id}/events"
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
            pages, url = [], f"{path}?limit=2"
            while url:
                answer = await client.get(url)
                assert answer.status_code == 200, answer.text
                pages.append([(e["sequence"], e["type"]) for e in answer.json()["items"]])
                url = answer.json()["next"]
            assert pages == [
                [(1, "loan.opened"), (2, "loan.repayment")],
                [(3, "loan.repayment"), (4, "loan.repayment")],
                [(5, "loan.closed")],
            ]
            whole = (await client.get(path)).json()
            assert (len(whole["items"]), whole["next"]) == (5, None)
            for limit in (0, 201):
                assert (await client.get(f"{path}?limit={limit}")).status_code == 422
            forged = await client.get(f"{path}?cursor={encode_key_cursor('quote-rank', '1:x')}")
            assert forged.status_code == 400
            assert forged.headers["content-type"].startswith("application/problem+json")
    finally:
        database.dispose()
