"""A loan whose ledger row holds a value its column cannot read back (``'1.5e9'`` in a uint256 column, written around
the application), over in-process HTTP on a real SQLite ledger: every route that reads the loan's row answers 503
``loan-record-unreadable`` naming the loan to a reader in its scope, without the stored value (logged for the
operators), and 404 to one outside it, as for an unknown loan; the list leaves it out with a logged error and lists
the others. Before (fixed 2026-11-29) both answered 500; then (fixed the same day) the events and a repayment
answered the 503, with the stored value, to any borrower or provider."""

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
from api.deps import get_borrower_account, get_principal
from api.routers import loan_events, loans
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
            assert "1.5e9" not in one.json()["detail"]  # the stored value is the operators' (logged), not the caller's
            assert listed.status_code == 200, listed.text
            assert [item["id"] for item in listed.json()["items"]] == [good.loan_id]
            assert sum(bad.loan_id in record.getMessage() for record in caplog.records) == 2  # the get, the list
            assert "'1.5e9'" in caplog.records[0].getMessage()
            assert (await client.get(f"/v1/loans/{good.loan_id}")).status_code == 200
            reader.append(Principal(Role.BORROWER, "someone-else"))
            assert (await client.get(f"/v1/loans/{bad.loan_id}")).status_code == 404
    finally:
        database.dispose()


async def test_every_loan_route_answers_an_unreadable_loan_outside_its_readers_scope_as_not_found(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
    database.migrate()
    bad = LoanFacts(loan_ref=2)
    owner = bad.quoted_by(database, "sim-bank")
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, [bad.opened()])
        uow.session.execute(text("UPDATE loans SET principal = '1.5e9' WHERE id = :id"), {"id": bad.loan_id})
        uow.commit()
    app = FastAPI()
    problems.install(app)
    app.include_router(loans.router)
    app.include_router(loan_events.router)
    assets = AssetRegistry([Asset("USDC", 6, Decimal(1)), Asset("WETH", 18, Decimal(3000))])
    settings = SimpleNamespace(accept_wait_seconds=1.0)
    app.state.platform = SimpleNamespace(database=database, chains={}, assets=assets, settings=settings)
    reader: list[Principal] = []
    app.dependency_overrides[get_principal] = lambda: reader[-1]
    app.dependency_overrides[get_borrower_account] = lambda: SimpleNamespace(
        account=SimpleNamespace(id=reader[-1].subject_id)
    )
    repayment = {"amount": "1.00", "nonce": "1", "deadline": 1, "signature": "0x" + "11" * 65}
    unknown = "00000000-0000-0000-0000-000000000000"

    async def answers(loan_id: str) -> list[httpx.Response]:
        return [
            await client.get(f"/v1/loans/{loan_id}"),
            await client.get(f"/v1/loans/{loan_id}/events"),
            await client.post(f"/v1/loans/{loan_id}/repayments", json=repayment),
        ]

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
            for outsider in (Principal(Role.BORROWER, "another-borrower"), Principal(Role.PROVIDER, "another-bank")):
                reader.append(outsider)
                for answer, as_unknown in zip(await answers(bad.loan_id), await answers(unknown), strict=True):
                    assert answer.status_code == 404, (outsider, answer.request.url, answer.text)
                    assert answer.json()["type"].endswith("/loan-not-found")
                    assert answer.json()["detail"] == as_unknown.json()["detail"].replace(unknown, bad.loan_id)
            reader.append(Principal(Role.BORROWER, owner))
            caplog.clear()
            with caplog.at_level(logging.ERROR, logger="store.loans"):
                own = await answers(bad.loan_id)
            for answer in own:
                assert answer.status_code == 503, (answer.request.url, answer.text)
                assert answer.json()["type"].endswith("/loan-record-unreadable")
                assert bad.loan_id in answer.json()["detail"]
                assert "1.5e9" not in answer.text
            assert all("'1.5e9'" in record.getMessage() for record in caplog.records)
            assert len(caplog.records) == 3
    finally:
        database.dispose()


def test_a_settlement_finds_an_unreadable_loan_by_its_id(tmp_path: Path) -> None:
    """The admin's funding settlement asks whether the loan exists before anything else: a row whose values do not
    read back still exists (before, the whole row was read and the settlement answered 500)."""
    from store.funding_settlements import SqlFundingSettlementStore

    database = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
    database.migrate()
    bad = LoanFacts(loan_ref=2)
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, [bad.opened()])
        uow.session.execute(text("UPDATE loans SET principal = '1.5e9' WHERE id = :id"), {"id": bad.loan_id})
        uow.commit()
    settlements = SqlFundingSettlementStore(database)
    assert settlements.loan_exists(bad.loan_id)
    assert not settlements.loan_exists("00000000-0000-0000-0000-000000000000")
