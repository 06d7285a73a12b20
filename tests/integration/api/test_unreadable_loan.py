"""A loan whose ledger row holds a value its column cannot read back (``'1.5e9'`` in a uint256 column, written around
the application), over in-process HTTP on a real SQLite ledger: ``GET /v1/loans/{id}`` answers 503
``loan-record-unreadable`` naming the loan to a reader in its scope (404 to one outside it, as for any loan), and the
list leaves it out with a logged error and lists the others. Before (fixed 2026-11-29) both answered 500."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from aggregator.assets import Asset, AssetRegistry
from api import problems
from api.auth import Principal, Role
from api.deps import get_principal
from api.routers import loans
from store.db import Database
from store.loan_ledger import apply_events
from tests.support.ledger_facts import CHAIN, LoanFacts

pytestmark = pytest.mark.integration


async def test_an_unreadable_loan_is_a_clear_problem_and_the_list_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
    database.migrate()
    good, bad = LoanFacts(loan_ref=1), LoanFacts(loan_ref=2)
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, [good.opened(), bad.opened()])
        uow.session.execute(text("UPDATE loans SET principal = '1.5e9' WHERE id = :id"), {"id": bad.loan_id})
        uow.commit()
    app = FastAPI()
    problems.install(app)
    app.include_router(loans.router)
    assets = AssetRegistry([Asset("USDC", 6, Decimal(1)), Asset("WETH", 18, Decimal(3000))])
    app.state.platform = SimpleNamespace(database=database, chains={}, assets=assets)
    reader: list[Principal] = [Principal(Role.ADMIN, None)]
    app.dependency_overrides[get_principal] = lambda: reader[-1]
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
            with caplog.at_level(logging.ERROR, logger="store.loans"):
                one = await client.get(f"/v1/loans/{bad.loan_id}")
                listed = await client.get("/v1/loans")
            assert one.status_code == 503, one.text
            assert one.headers["content-type"] == "application/problem+json"
            assert one.json()["type"].endswith("/loan-record-unreadable")
            assert bad.loan_id in one.json()["detail"]
            assert "'1.5e9'" in one.json()["detail"]
            assert listed.status_code == 200, listed.text
            assert [item["id"] for item in listed.json()["items"]] == [good.loan_id]
            assert sum(bad.loan_id in record.getMessage() for record in caplog.records) == 2  # the get, the list
            assert (await client.get(f"/v1/loans/{good.loan_id}")).status_code == 200
            reader.append(Principal(Role.BORROWER, "someone-else"))
            assert (await client.get(f"/v1/loans/{bad.loan_id}")).status_code == 404
    finally:
        database.dispose()
