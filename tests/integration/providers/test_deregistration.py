"""Deregistering a lender stops its quoting only (real PostgreSQL, the providers API in-process, a real simulated
lender over HTTP): its quotes still acceptable are withdrawn in the deregistering transaction, and its loans are
still serviced — its signed webhooks are verified and acted on, the accept saga still reaches it to fund, cancel or
ask a funding's state — in the deregistering process and in one started after it; an accept of its quote cancelled
after it does not offer the quote again. Registered again, it quotes again, and the withdrawn quotes stay so."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from aggregator._accept_lender import LenderPhases
from aggregator.accept_saga import AcceptRecord, AcceptStep, LockRefused, QuoteView
from api.auth import Role, ensure_key
from api.routers import api_keys
from api.workers import lender_funding
from providers.destinations import PinnedTransport
from providers.models import FundingState
from providers.signing import signed_headers
from providers.sim.fleet import SimLender
from store.accepts import SqlAcceptStore
from store.aggregator import QuoteRow
from store.db import Database
from tests.integration.providers.support import (
    GUARD,
    SECRET,
    lender_requests,
    providers_api,
    registration,
    sim_server,
    stored_registry,
)
from tests.support.ledger_facts import add_quote

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ADMIN = "cm_admin_deregistration"
LENDER = "late-bank"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sim_server([SimLender(lender_id=LENDER, secret=SECRET)], Path(tmp_path_factory.mktemp("sim"))) as base:
        yield base


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema("deregistration"))
    db.migrate()
    ensure_key(db, ADMIN, Role.ADMIN, None, "test admin")
    yield db
    db.dispose()


def _quote(database: Database, provider_id: str, status: str) -> str:
    quote_id = str(uuid.uuid4())
    add_quote(
        database,
        borrower_address="0x" + uuid.uuid4().hex[:8] * 5,
        offer_digest="0x" + uuid.uuid4().hex * 2,
        provider_id=provider_id,
        chain_name="ethereum-local",
        chain_id=31337,
        contract="0x" + "11" * 20,
        status=status,
        quote_id=quote_id,
        offer={"providerRef": f"ref-{quote_id}", "principal": "1000000000", "nonce": 1},
    )
    return quote_id


def _record(quote: QuoteView, now: datetime) -> AcceptRecord:
    return AcceptRecord(
        quote_id=quote.id,
        request_id=quote.request_id,
        borrower_id=quote.borrower_id,
        kind=quote.kind,
        chain_name=quote.chain_name,
        attempt=1,
        step=AcceptStep.SIMULATED,
        owner="accepting-process",
        lease_until=now + timedelta(minutes=1),
        updated_at=now,
    )


def _statuses(database: Database, *quote_ids: str) -> list[str]:
    with database.unit_of_work() as uow:
        return [uow.session.get(QuoteRow, quote_id).status for quote_id in quote_ids]  # type: ignore[union-attr]


def _signed(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"protocol_version": "1", "occurred_at": datetime.now(UTC).isoformat()} | event).encode()
    return body, signed_headers(SECRET, int(time.time()), body)


async def test_a_deregistered_lender_stops_quoting_only(sim: str, database: Database) -> None:
    admin = {"X-API-Key": ADMIN}
    async with httpx.AsyncClient(transport=PinnedTransport(GUARD)) as http:
        registry = stored_registry(database, http)
        app = providers_api(registry, database)
        app.include_router(api_keys.router)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as api:
            created = await api.post("/v1/providers", json=registration(sim), headers=admin)
            assert created.status_code == 201, created.text
            offered, superseded, accepting = (
                _quote(database, LENDER, s) for s in ("offered", "superseded", "accepting")
            )
            expired = _quote(database, LENDER, "offered")
            with database.unit_of_work() as uow:  # an expired quote is left as it is: it is not acceptable anyway
                past = datetime.now(UTC) - timedelta(minutes=1)
                uow.session.execute(update(QuoteRow).where(QuoteRow.id == expired).values(expires_at=past))
                uow.commit()
            others = _quote(database, "other-bank", "offered")

            removed = await api.delete(f"/v1/providers/{LENDER}", headers=admin)
            assert removed.status_code == 204, removed.text

            assert _statuses(database, offered, superseded, accepting, expired, others) == [
                "withdrawn",
                "withdrawn",
                "accepting",
                "offered",
                "offered",
            ], "its acceptable quotes withdrawn with the deregistration; an accept under way goes on"
            assert registry.adapters() == [], "it no longer quotes"
            # its keys were revoked with it: none is issued to it again until it is registered again
            issued = await api.post(
                "/v1/api-keys", json={"role": "provider", "subject_id": LENDER, "label": "again"}, headers=admin
            )
            assert issued.status_code == 404, issued.text
            assert "was deregistered: register it again" in issued.json()["detail"]

            # a quote written after the deregistration (a fan-out under way then, a process yet to see it) is
            # refused at accept as the withdrawn ones are
            late = _quote(database, LENDER, "offered")
            with SqlAcceptStore(database).unit_of_work() as uow:
                late_view = uow.accepts.quote(late)
                assert late_view is not None
                with pytest.raises(LockRefused) as refused:
                    uow.accepts.lock(late_view, _record(late_view, datetime.now(UTC)))
            assert refused.value.status == "withdrawn"
            assert _statuses(database, late) == ["offered"], "nothing written by the refused lock"
            with SqlAcceptStore(database).unit_of_work() as uow:  # what the accept does next, then answers 409
                uow.accepts.withdraw(late)
                uow.commit()
            assert _statuses(database, late) == ["withdrawn"], "shown withdrawn, no longer offered"
            listed = (await api.get("/v1/providers", headers=admin)).json()["providers"]
            assert [(p["provider_id"], p["deregistered"]) for p in listed] == [(LENDER, True)]

            # its signed webhooks are still verified and acted on: not 404
            body, headers = _signed({"event_id": "evt-w1", "type": "offer.withdrawn", "offer_ref": "ref-none"})
            withdrawn = await api.post(f"/v1/providers/{LENDER}/webhooks", content=body, headers=headers)
            assert withdrawn.status_code == 202, withdrawn.text
            assert withdrawn.json() == {"accepted": "evt-w1", "effect": "none"}
            body, headers = _signed(
                {
                    "event_id": "evt-p1",
                    "type": "payment.received",
                    "offer_ref": "ref-none",
                    "payment_ref": "pay-1",
                    "amount": "100.00",
                }
            )
            paid = await api.post(f"/v1/providers/{LENDER}/webhooks", content=body, headers=headers)
            assert paid.status_code == 404, paid.text
            assert paid.json()["detail"] == f"no loan of {LENDER}'s offer ref-none", "verified, then looked up"
            forged = await api.post(
                f"/v1/providers/{LENDER}/webhooks",
                content=body,
                headers=signed_headers("x" * 32, int(time.time()), body),
            )
            assert forged.status_code == 401, "still verified with its own secret"

            # the accept saga still reaches it: its funding asked, its adapter found for fund and cancel
            before = lender_requests(sim, LENDER).get("status", 0)
            assert await lender_funding(registry, LENDER, "ref-unknown") is FundingState.UNKNOWN
            assert lender_requests(sim, LENDER).get("status", 0) == before + 1
            now = datetime.now(UTC)
            view = QuoteView(
                id=accepting,
                request_id="request",
                borrower_id="borrower",
                provider_id=LENDER,
                kind="traditional",
                chain_name="ethereum-local",
                chain_id=31337,
                contract="0x",
                offer={},
                offer_digest="0x",
                offer_signature="0x",
                attestation={},
                attestation_signature="0x",
                disclosure={},
                status="accepting",
                expires_at=now,
                risk_max_amount="1000",
            )
            assert LenderPhases(registry).adapter(view) is registry[LENDER]

            # a process started after the deregistration keeps it too, out of quoting
            later = stored_registry(database, http)
            await later.load_persisted()
            assert later.deregistered(LENDER)
            assert later.adapters() == []
            assert later.get_provider(LENDER).provider_id == LENDER

            # the accept under way is cancelled: its quote is not offered again
            store = SqlAcceptStore(database)
            record = AcceptRecord(
                quote_id=accepting,
                request_id="request",
                borrower_id="borrower",
                kind="traditional",
                chain_name="ethereum-local",
                attempt=1,
                step=AcceptStep.CANCELLED,
                owner="nobody",
                lease_until=now,
                updated_at=now,
            )
            with store.unit_of_work() as uow:
                uow.accepts.release(record, datetime.now(UTC))
                uow.commit()
            assert _statuses(database, accepting) == ["withdrawn"]

            # registered again: quoting again, in this process and the other; the withdrawn quotes stay withdrawn
            again = await api.post("/v1/providers", json=registration(sim), headers=admin)
            assert again.status_code == 201, again.text
            assert [a.provider_id for a in registry.adapters()] == [LENDER]
            assert not registry.deregistered(LENDER)
            assert await later.sync_persisted()
            assert [a.provider_id for a in later.adapters()] == [LENDER]
            assert not later.deregistered(LENDER)
            assert _statuses(database, offered, superseded, accepting) == ["withdrawn"] * 3
            twice = await api.post("/v1/providers", json=registration(sim), headers=admin)
            assert twice.status_code == 409, twice.text
