"""GET /v1/decisions (issue 17): risk decisions and compliance decision records as one list for auditors and
admins, newest first, a page at a time over both tables, filtered by borrower (its own decisions and those made for
its credit requests), credit request, kind, outcome and time; a borrower's key is refused; a foreign cursor is 400.
Through the real router on a migrated database, the decisions written by the stores the quote path uses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import problems
from api.auth import Role, ensure_bootstrap_admin, issue
from api.routers import decisions
from compliance.decisions import DecisionKind, decide
from compliance.jurisdiction import Reason
from risk.policy import RiskDecision, RiskReason
from risk.repository import StoredDecision
from store.aggregator import CreditRequestRow
from store.api import BorrowerRow
from store.compliance import SqlDecisionRepository
from store.db import Database
from store.risk import SqlRiskDecisionRepository

pytestmark = pytest.mark.integration

ADMIN = "cm_admin_decision_list_tests"
T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _risk(approved: bool) -> RiskDecision:
    return RiskDecision(
        approved=approved,
        score=700 if approved else 480,
        scorecard_score=690,
        onchain_points=10,
        grade=2 if approved else None,
        grade_letter="B" if approved else None,
        pd=Decimal("0.02"),
        max_ltv_bps=7000,
        max_amount=Decimal(5000),
        spread_bps=300,
        reasons=(RiskReason(code="R04", text="short credit history"),),
        unknown=(),
        model_version="scorecard-1",
        policy_version="policy-1",
        inputs_hash="0x" + "ab" * 32,
    )


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, dict[str, str]]]:
    """One database for the module: the tests only read its decisions."""
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('decisions') / 'decisions.db'}")
    database.migrate()
    ensure_bootstrap_admin(database, ADMIN)
    ids: dict[str, str] = {}
    with database.unit_of_work() as uow:
        session = uow.session
        for borrower, wallet in (("b-ada", "0x" + "a1" * 20), ("b-bob", "0x" + "b2" * 20)):
            session.add(BorrowerRow(id=borrower, wallet_address=wallet, jurisdiction="US-FL", created_at=T0))
        session.flush()
        for request, borrower in (("r-ada", "b-ada"), ("r-bob", "b-bob")):
            session.add(
                CreditRequestRow(
                    id=request,
                    borrower_id=borrower,
                    asset="USDC",
                    amount="1500.00",
                    term_days=30,
                    purpose="general",
                    collateral_asset="WETH",
                    collateral_amount="1.0",
                    preferred_chains=[],
                    status="quoted",
                    risk={},
                    created_at=T0,
                )
            )
        session.flush()
        risk = SqlRiskDecisionRepository(session)
        risk.add(StoredDecision("risk-ada", "b-ada", "r-ada", _risk(True), _at(1)))
        risk.add(StoredDecision("risk-bob", "b-bob", "r-bob", _risk(False), _at(2)))
        records = SqlDecisionRepository(session)
        versions = {"sdn": "2026-11-01"}
        screened = decide(DecisionKind.CREDIT_REQUEST, "b-ada", {"n": 1}, [], versions, _at(1))
        offer = decide(
            DecisionKind.OFFER,
            "lender-offer-7",
            {"n": 2},
            [Reason("usury.cap", "over the cap", "Fla. Stat. 687")],
            {},
            _at(3),
        )
        source = decide(DecisionKind.COLLATERAL_SOURCE, "0x" + "c3" * 20, {"n": 3}, [], versions, _at(4))
        held = decide(
            DecisionKind.CREDIT_REQUEST,
            "b-bob",
            {"n": 4},
            [],
            versions,
            _at(5),
            review_reasons=[Reason("sanctions.possible-match", "a possible name match")],
        )
        records.add(screened, "r-ada")
        records.add(offer, "r-ada")
        records.add(source)
        records.add(held, "r-bob")
        uow.commit()
    ids |= {"screened": screened.decision_id, "offer": offer.decision_id, "source": source.decision_id}
    ids |= {"held": held.decision_id}
    yield database, ids
    database.dispose()


def _client(database: Database) -> TestClient:
    app = FastAPI()
    problems.install(app)
    app.include_router(decisions.router)
    app.state.platform = SimpleNamespace(database=database)
    return TestClient(app, raise_server_exceptions=False)


def _all(client: TestClient, key: str, **query: Any) -> list[dict[str, Any]]:
    """Every decision the filters find, walking the pages two at a time."""
    items: list[dict[str, Any]] = []
    url: str | None = "/v1/decisions"
    params: dict[str, Any] | None = query | {"limit": 2}
    while url is not None:
        response = client.get(url, params=params, headers={"X-API-Key": key})
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        url, params = response.json()["next"], None
    return items


def test_auditors_page_through_every_decision_newest_first(seeded: tuple[Database, dict[str, str]]) -> None:
    database, ids = seeded
    auditor = issue(database, Role.AUDITOR, None, "auditor").key
    client = _client(database)
    everything = _all(client, auditor)
    assert [item["id"] for item in everything] == [
        ids["held"],
        ids["source"],
        ids["offer"],
        "risk-bob",
        *sorted([ids["screened"], "risk-ada"], reverse=True),
    ]
    declined = next(item for item in everything if item["id"] == "risk-bob")
    assert (declined["kind"], declined["outcome"], declined["request_id"]) == ("risk", "deny", "r-bob")
    assert declined["reasons"] == [{"code": "R04", "message": "short credit history"}]
    assert declined["risk"]["score"] == 480
    offer = next(item for item in everything if item["id"] == ids["offer"])
    assert (offer["borrower_id"], offer["outcome"]) == ("b-ada", "deny")  # through its credit request
    assert offer["reasons"][0]["citation"] == "Fla. Stat. 687"
    assert offer["record_hash"].startswith("0x")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"borrower_id": "b-ada"}, {"risk-ada", "screened", "offer"}),
        ({"request_id": "r-bob"}, {"risk-bob", "held"}),
        ({"kind": "risk"}, {"risk-ada", "risk-bob"}),
        ({"kind": "collateral-source"}, {"source"}),
        ({"outcome": "deny"}, {"risk-bob", "offer"}),
        ({"outcome": "review"}, {"held"}),
        ({"decided_after": _at(3).isoformat(), "decided_before": _at(5).isoformat()}, {"offer", "source"}),
        ({"decided_after": "2026-11-01T12:05:00"}, {"held"}),  # no offset: UTC
        ({"borrower_id": "b-ada", "outcome": "allow", "kind": "credit-request"}, {"screened"}),
    ],
)
def test_the_filters(seeded: tuple[Database, dict[str, str]], query: dict[str, str], expected: set[str]) -> None:
    database, ids = seeded
    found = {item["id"] for item in _all(_client(database), ADMIN, **query)}
    assert found == {ids.get(name, name) for name in expected}


def test_borrowers_and_foreign_cursors_are_refused(seeded: tuple[Database, dict[str, str]]) -> None:
    database, _ = seeded
    client = _client(database)
    borrower = issue(database, Role.BORROWER, "b-ada", "borrower").key
    refused = client.get("/v1/decisions", headers={"X-API-Key": borrower})
    assert refused.status_code == 403
    assert refused.headers["content-type"] == problems.PROBLEM_JSON
    foreign = client.get("/v1/decisions", params={"cursor": "bm90LWEtY3Vyc29y"}, headers={"X-API-Key": ADMIN})
    assert foreign.status_code == 400
    assert foreign.json()["type"].endswith("/invalid-cursor")
    unknown_kind = client.get("/v1/decisions", params={"kind": "gossip"}, headers={"X-API-Key": ADMIN})
    assert unknown_kind.status_code == 422
