"""Two concurrent registrations of one wallet: the loser gets 409 problem+json, never an IntegrityError 500. The
race is made exact on a real PostgreSQL: the competing registration commits between this one's check and its
insert."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from api import problems
from api.auth import Role, ensure_key
from api.routers import borrowers
from store.api import BorrowerRow
from store.db import Database

pytestmark = pytest.mark.integration

ADMIN = "cm_admin_registration_race_tests"
WALLET = to_checksum_address("0x" + "5a" * 20)


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema("borrower_race"))
    db.migrate()
    ensure_key(db, ADMIN, Role.ADMIN, None, "test admin")
    yield db
    db.dispose()


def test_a_wallet_registered_concurrently_is_a_409_for_the_second(database: Database) -> None:
    app = FastAPI()
    problems.install(app)
    app.include_router(borrowers.router)
    app.state.platform = SimpleNamespace(database=database)
    competitor = str(uuid.uuid4())
    raced: list[str] = []

    def register_competitor_first(session: Session, *_: Any) -> None:
        # runs at this registration's flush, after its "is the wallet free?" check: the other one commits now
        if raced:
            return
        raced.append(competitor)
        with database.unit_of_work() as uow:
            uow.session.add(
                BorrowerRow(id=competitor, wallet_address=WALLET, jurisdiction="US-NY", created_at=datetime.now(UTC))
            )
            uow.commit()

    event.listen(database.sessions, "before_flush", register_competitor_first)
    with TestClient(app) as client:
        answer = client.post(
            "/v1/borrowers", json={"wallet_address": WALLET, "jurisdiction": "US-NY"}, headers={"X-API-Key": ADMIN}
        )
    event.remove(database.sessions, "before_flush", register_competitor_first)
    assert raced, "the competing registration committed in between"
    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "already registered" in answer.json()["detail"]
    with database.unit_of_work() as uow:
        rows = list(uow.session.query(BorrowerRow).filter_by(wallet_address=WALLET))
    assert [row.id for row in rows] == [competitor], "nothing half-written"
