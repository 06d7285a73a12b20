"""Providers through the API (in-process ASGI, a real SQLite database, a real simulated lender over HTTP): an admin
registers an HTTP lender, which the next fan-out asks and a restarted registry loads from the store; the provider's
own key sees its health and breaker, and only its own; signed webhooks are accepted once; a bad signature or a
replay is refused without counting against the provider (limited per source instead), and a signed body that is not
the schema is recorded as the provider's incident."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from aggregator.fanout import fan_out
from api.auth import Role, ensure_key, issue_key
from api.pagination import encode_cursor
from compliance.adverse_action import Party
from providers.destinations import PinnedTransport
from providers.registry import ProviderRegistry
from providers.signing import signed_headers
from providers.sim.fleet import SimLender, lender_url
from providers.webhooks import MAX_WEBHOOK_BODY_BYTES, MemoryRefusalLimiter, RefusalLimits
from store.db import Database
from store.providers import ProviderRegistrationRow, ProviderRepository
from tests.integration.providers.support import (
    GUARD,
    SECRET,
    providers_api,
    registration,
    sim_server,
    stored_registry,
)
from tests.unit.providers.fakes import REQUEST

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ADMIN = "cm_admin_provider_tests"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sim_server([SimLender(lender_id="late-bank", secret=SECRET)], Path(tmp_path_factory.mktemp("sim"))) as base:
        yield base


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, ProviderRegistry, Database]]:
    database = Database(f"sqlite:///{tmp_path / 'providers.db'}")
    database.migrate()
    ensure_key(database, ADMIN, Role.ADMIN, None, "test admin")
    async with httpx.AsyncClient(transport=PinnedTransport(GUARD)) as http:
        registry = stored_registry(database, http)
        transport = httpx.ASGITransport(app=providers_api(registry, database))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield client, registry, database
    database.dispose()


async def test_an_admin_registers_a_lender_that_the_next_fan_out_asks_and_a_restart_loads(
    sim: str, setup: tuple[httpx.AsyncClient, ProviderRegistry, Database]
) -> None:
    client, registry, database = setup
    live = registry.adapters()
    created = await client.post("/v1/providers", json=registration(sim), headers={"X-API-Key": ADMIN})
    assert created.status_code == 201, created.text
    provider_key = created.json()["api_key"]
    outcomes = await fan_out(live, REQUEST, 0.5)
    assert [(o.provider_id, o.outcome) for o in outcomes] == [("late-bank", "offered")]

    health = await client.get("/v1/providers/late-bank/health", headers={"X-API-Key": provider_key})
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["breaker"]["state"] == "closed"
    assert body["breaker"]["fail_max"] == 10
    assert body["total_calls"] == 1
    assert body["source"] == "api"
    assert set(body["latency_ms"]) == {"p50", "p95", "p99"}

    with database.unit_of_work() as uow:
        stored = ProviderRepository(uow.session).registration("late-bank")
        assert stored is not None
        assert "secret" not in stored.config, "the lender's HMAC secret is sealed at rest"
        assert SECRET not in json.dumps(stored.config)
    async with httpx.AsyncClient(transport=PinnedTransport(GUARD)) as http:
        restarted = stored_registry(database, http)
        await restarted.load_persisted()
        assert list(restarted) == ["late-bank"]
        assert restarted.get_provider("late-bank").policy.fail_max == 10
        assert restarted.get_provider("late-bank").capabilities().max_term_days == 365
        reopened = await fan_out(restarted.adapters(), REQUEST, 1.0)
        assert [(o.provider_id, o.outcome) for o in reopened] == [("late-bank", "offered")], "the secret opens"


async def test_registration_refusals_say_what_is_wrong(
    sim: str, setup: tuple[httpx.AsyncClient, ProviderRegistry, Database]
) -> None:
    client, registry, _ = setup
    admin = {"X-API-Key": ADMIN}
    assert (await client.post("/v1/providers", json=registration(sim), headers=admin)).status_code == 201
    again = await client.post("/v1/providers", json=registration(sim), headers=admin)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    unknown = await client.post("/v1/providers", json=registration(sim, provider_id="x1", kind="nope"), headers=admin)
    assert unknown.status_code == 422
    assert "no provider plugin 'nope'; installed: http, pool" in unknown.json()["detail"]
    bad = await client.post(
        "/v1/providers",
        json=registration(sim, provider_id="x2", config={"base_url": "x", "secret": SECRET}),
        headers=admin,
    )
    assert bad.status_code == 422
    assert "base_url" in bad.json()["detail"]
    for n, internal in enumerate(["http://169.254.169.254/latest", "http://10.0.0.1:8080", "http://lender.test?x=/"]):
        refused = await client.post(
            "/v1/providers",
            json=registration(sim, provider_id=f"ssrf-{n}", config={"base_url": internal, "secret": SECRET}),
            headers=admin,
        )
        assert refused.status_code == 422, internal
        assert "base_url" in refused.json()["detail"]
    assert sorted(registry) == ["late-bank"], "nothing half-registered"


async def test_a_lender_registered_for_a_country_is_asked_for_its_states_and_an_unknown_code_is_refused(
    sim: str, setup: tuple[httpx.AsyncClient, ProviderRegistry, Database]
) -> None:
    client, registry, _ = setup
    admin = {"X-API-Key": ADMIN}
    capabilities = {"assets": ["USDC"], "max_term_days": 365}
    for codes, field in ((["US-NY", "zz"], "1"), (["US-CA"], "0")):  # ZZ is no country; US-CA is not served
        refused = await client.post(
            "/v1/providers",
            json=registration(sim, capabilities=capabilities | {"jurisdictions": codes}),
            headers=admin,
        )
        assert refused.status_code == 422, refused.text
        (error,) = refused.json()["errors"]
        assert error["field"] == f"capabilities.jurisdictions.{field}"
        assert "is not a jurisdiction the platform serves" in error["message"]
        assert "US-FL" in error["message"]
        assert "(US)" in error["message"]
    assert list(registry) == [], "nothing registered"

    created = await client.post(
        "/v1/providers", json=registration(sim, capabilities=capabilities | {"jurisdictions": ["us"]}), headers=admin
    )
    assert created.status_code == 201, created.text
    for jurisdiction in ("US-FL", "US"):  # the country's code covers its states
        outcomes = await fan_out(registry.adapters(), replace(REQUEST, jurisdiction=jurisdiction), 0.5)
        assert [(o.provider_id, o.outcome) for o in outcomes] == [("late-bank", "offered")], jurisdiction
    (elsewhere,) = await fan_out(registry.adapters(), replace(REQUEST, jurisdiction="GB"), 0.5)
    assert (elsewhere.outcome, elsewhere.detail) == ("ineligible", "jurisdiction GB not served")


async def test_a_registration_names_the_creditor_the_lender_lends_as_and_a_restart_loads_it(
    sim: str, setup: tuple[httpx.AsyncClient, ProviderRegistry, Database]
) -> None:
    """A provider id is not a creditor's identity (12 CFR 1002.9(g)): a lender's registration gives its legal name and
    postal address, which the admin API answers and lists, the store keeps and a restarted registry loads (the notices
    given for it name them). Both or neither: one alone is 422. Locally a registration may give neither (listed
    null: none on file)."""
    client, registry, database = setup
    admin = {"X-API-Key": ADMIN}
    named = {"legal_name": "Late Bank, N.A.", "address": "4 Harbour Road, Springfield, IL 62701"}
    half = await client.post("/v1/providers", json=registration(sim, legal_name="Late Bank, N.A."), headers=admin)
    assert half.status_code == 422, half.text
    assert "give both legal_name and address" in half.text
    assert list(registry) == []

    created = await client.post("/v1/providers", json=registration(sim, **named), headers=admin)
    assert created.status_code == 201, created.text
    assert {key: created.json()[key] for key in named} == named
    unnamed = await client.post("/v1/providers", json=registration(sim, provider_id="plain-bank"), headers=admin)
    assert unnamed.status_code == 201, unnamed.text
    listed = (await client.get("/v1/providers", headers=admin)).json()["providers"]
    assert [(p["provider_id"], p["legal_name"], p["address"]) for p in listed] == [
        ("late-bank", named["legal_name"], named["address"]),
        ("plain-bank", None, None),
    ]
    with database.unit_of_work() as uow:
        stored = ProviderRepository(uow.session).registration("late-bank")
        assert stored is not None
        assert (stored.legal_name, stored.postal_address) == (named["legal_name"], named["address"])

    async with httpx.AsyncClient(transport=PinnedTransport(GUARD)) as http:
        restarted = stored_registry(database, http)
        await restarted.load_persisted()
        assert restarted.get_provider("late-bank").creditor() == Party(named["legal_name"], named["address"])
        assert restarted.get_provider("plain-bank").creditor() is None


async def test_a_registration_names_the_webhook_url_its_loan_events_go_to(
    sim: str, setup: tuple[httpx.AsyncClient, ProviderRegistry, Database]
) -> None:
    client, registry, database = setup
    admin = {"X-API-Key": ADMIN}
    for n, internal in enumerate(["http://169.254.169.254/events", "http://10.0.0.1/events", "ftp://lender.test/x"]):
        refused = await client.post(
            "/v1/providers", json=registration(sim, provider_id=f"hook-{n}", webhook_url=internal), headers=admin
        )
        assert refused.status_code == 422, internal
        assert "webhook_url" in refused.json()["detail"]
    webhook = f"{sim}/events"
    created = await client.post("/v1/providers", json=registration(sim, webhook_url=webhook), headers=admin)
    assert created.status_code == 201, created.text
    assert sorted(registry) == ["late-bank"], "nothing half-registered"
    with database.unit_of_work() as uow:
        stored = ProviderRepository(uow.session).registration("late-bank")
        assert stored is not None
        assert stored.webhook_url == webhook

    provider = {"X-API-Key": created.json()["api_key"]}
    path = "/v1/providers/late-bank/loan-events-webhook"
    moved = await client.put(path, json={"url": f"{sim}/v2/events"}, headers=provider)
    assert moved.status_code == 200, moved.text
    refused = await client.put(path, json={"url": "http://169.254.169.254/x"}, headers=provider)
    assert refused.status_code == 422
    too_long = await client.put(path, json={"url": "https://" + "0" * 2000}, headers=admin)
    assert too_long.status_code == 422
    assert "no DNS name can be" in too_long.json()["detail"]
    unknown = await client.put(  # 404 before the URL is looked at: an unknown provider's host is never resolved
        "/v1/providers/no-such-bank/loan-events-webhook", json={"url": "http://169.254.169.254/x"}, headers=admin
    )
    assert unknown.status_code == 404
    other = issue_key(database, Role.PROVIDER, "other-bank", "another provider")
    assert (await client.put(path, json={"url": None}, headers={"X-API-Key": other})).status_code == 404
    with database.unit_of_work() as uow:
        stored = ProviderRepository(uow.session).registration("late-bank")
        assert stored is not None
        assert stored.webhook_url == f"{sim}/v2/events"
    assert (await client.put(path, json={"url": None}, headers=admin)).status_code == 200
    with database.unit_of_work() as uow:
        stored = ProviderRepository(uow.session).registration("late-bank")
        assert stored is not None
        assert stored.webhook_url is None


async def test_a_provider_key_sees_only_its_own_health(
    sim: str, setup: tuple[httpx.AsyncClient, ProviderRegistry, Database]
) -> None:
    client, _, database = setup
    admin = {"X-API-Key": ADMIN}
    key = (await client.post("/v1/providers", json=registration(sim), headers=admin)).json()["api_key"]
    other = (
        await client.post("/v1/providers", json=registration(sim, provider_id="other-bank"), headers=admin)
    ).json()["api_key"]
    borrower = issue_key(database, Role.BORROWER, "b-1", "borrower")
    assert (await client.get("/v1/providers/late-bank/health", headers={"X-API-Key": other})).status_code == 404
    assert (await client.get("/v1/providers/late-bank/health", headers={"X-API-Key": borrower})).status_code == 403
    assert (await client.get("/v1/providers/late-bank/health")).status_code == 401
    assert (await client.get("/v1/providers", headers={"X-API-Key": key})).status_code == 403
    listed = (await client.get("/v1/providers", headers=admin)).json()
    assert [p["provider_id"] for p in listed["providers"]] == ["late-bank", "other-bank"]
    assert listed["next_cursor"] is None  # without limit: the whole list, as before paging
    # a page at a time (additive: the same providers key, next_cursor null at the end)
    first = (await client.get("/v1/providers", params={"limit": 1}, headers=admin)).json()
    assert [p["provider_id"] for p in first["providers"]] == ["late-bank"]
    second = (await client.get("/v1/providers", params={"cursor": first["next_cursor"]}, headers=admin)).json()
    assert [p["provider_id"] for p in second["providers"]] == ["other-bank"]
    assert second["next_cursor"] is None
    assert (await client.get(first["next"], headers=admin)).json()["providers"] == second["providers"]
    foreign = await client.get(
        "/v1/providers", params={"cursor": encode_cursor("loans", datetime.now(UTC), "x")}, headers=admin
    )
    assert foreign.status_code == 400
    probed = await client.get("/v1/providers/late-bank/health?probe=true", headers={"X-API-Key": key})
    assert probed.json()["probe"] == {"healthy": True, "detail": "HTTP 200"}


def _webhook(event_id: str = "evt-1", **changes: Any) -> bytes:
    event = {
        "protocol_version": "1",
        "event_id": event_id,
        "type": "offer.funded",
        "offer_ref": "late-bank-1",
        "state": "funded",
        "occurred_at": "2026-01-01T00:00:00Z",
    } | changes
    return json.dumps(event).encode()


async def test_webhooks_are_accepted_once_and_only_signed_bad_ones_are_the_providers_incident(
    sim: str, setup: tuple[httpx.AsyncClient, ProviderRegistry, Database]
) -> None:
    client, registry, database = setup
    assert (await client.post("/v1/providers", json=registration(sim), headers={"X-API-Key": ADMIN})).status_code == 201
    url = "/v1/providers/late-bank/webhooks"
    now = int(time.time())
    body = _webhook()
    headers = signed_headers(SECRET, now, body)
    accepted = await client.post(url, content=body, headers=headers)
    assert accepted.status_code == 202, accepted.text

    replayed = await client.post(url, content=body, headers=headers)
    forged = await client.post(url, content=body, headers=signed_headers("not-the-secret", now, body))
    same_event = await client.post(url, content=body, headers=signed_headers(SECRET, now + 1, body))
    stale = await client.post(
        url, content=_webhook("evt-2"), headers=signed_headers(SECRET, now - 3_600, _webhook("evt-2"))
    )
    bad_body = _webhook("evt-3", type="loan.exploded")
    malformed = await client.post(url, content=bad_body, headers=signed_headers(SECRET, now, bad_body))
    answers = [(r.status_code, r.json()["detail"]) for r in (replayed, forged, same_event, stale, malformed)]
    assert answers == [
        (401, "webhook refused: replayed request"),
        (401, "webhook refused: signature does not match"),
        (409, "webhook refused: replayed event evt-1"),
        (401, "webhook refused: timestamp outside the allowed window"),
        (422, answers[4][1]),
    ]
    assert answers[4][1].startswith("webhook body violates the protocol: type:")

    with database.unit_of_work() as uow:
        repository = ProviderRepository(uow.session)
        assert [e.event_id for e in repository.webhook_events("late-bank")] == ["evt-1"]
        reasons = [i.reason for i in reversed(repository.incidents("late-bank"))]
    assert reasons == [answers[4][1]], "only the correctly signed bad body is the provider's incident"
    health = await registry.health("late-bank")
    assert health["breaker"]["consecutive_failures"] == 0, "no webhook is a breaker failure"
    assert [f["reason"] for f in health["recent_failures"]] == reasons


async def test_six_forged_webhooks_leave_the_breaker_closed_and_write_nothing(
    sim: str, setup: tuple[httpx.AsyncClient, ProviderRegistry, Database]
) -> None:
    client, registry, database = setup
    five_failures = registration(sim, resilience={"fail_max": 5, "quote_attempts": 1})
    assert (await client.post("/v1/providers", json=five_failures, headers={"X-API-Key": ADMIN})).status_code == 201
    body = _webhook()
    for n in range(6):
        forged = await client.post(
            "/v1/providers/late-bank/webhooks",
            content=body,
            headers=signed_headers("guessed-secret", int(time.time()) + n, body),
        )
        assert forged.status_code == 401
    health = await registry.health("late-bank")
    assert health["breaker"]["state"] == "closed"
    assert health["breaker"]["consecutive_failures"] == 0
    with database.unit_of_work() as uow:
        assert ProviderRepository(uow.session).incidents("late-bank") == [], "no row per forged try"
    outcomes = await fan_out(registry.adapters(), REQUEST, 1.0)
    assert [(o.provider_id, o.outcome) for o in outcomes] == [("late-bank", "offered")]


async def test_a_non_ascii_signature_is_a_4xx_and_oversized_bodies_are_refused_before_the_hmac(
    sim: str, setup: tuple[httpx.AsyncClient, ProviderRegistry, Database]
) -> None:
    client, _, _ = setup
    assert (await client.post("/v1/providers", json=registration(sim), headers={"X-API-Key": ADMIN})).status_code == 201
    url = "/v1/providers/late-bank/webhooks"
    body = _webhook()
    timestamp = str(int(time.time())).encode()
    headers = [(b"X-Creditmesh-Timestamp", timestamp), (b"X-Creditmesh-Signature", "\u00e9t\u00e9".encode())]
    non_ascii = await client.post(url, content=body, headers=headers)
    assert non_ascii.status_code == 401, non_ascii.text
    huge = b'{"pad": "' + b"x" * (MAX_WEBHOOK_BODY_BYTES + 1) + b'"}'
    oversized = await client.post(url, content=huge, headers=signed_headers(SECRET, int(time.time()), huge))
    assert oversized.status_code == 413
    assert oversized.headers["content-type"].startswith("application/problem+json")


async def test_refused_webhooks_are_limited_per_source(
    sim: str, setup: tuple[httpx.AsyncClient, ProviderRegistry, Database]
) -> None:
    client, registry, database = setup
    assert (await client.post("/v1/providers", json=registration(sim), headers={"X-API-Key": ADMIN})).status_code == 201
    registry.webhook_refusals = MemoryRefusalLimiter(RefusalLimits(per_window=3, window_seconds=3_600))
    url = "/v1/providers/late-bank/webhooks"
    body = _webhook()
    now = int(time.time())
    codes = [
        (await client.post(url, content=body, headers=signed_headers("wrong-secret", now + n, body))).status_code
        for n in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    forged_again = await client.post(url, content=body, headers=signed_headers("wrong-secret", now + 9, body))
    assert forged_again.status_code == 429
    assert forged_again.headers["Retry-After"] == "3600"
    # the lender's own webhook from the same address (a proxy both share, say) is still verified and taken
    taken = await client.post(url, content=body, headers=signed_headers(SECRET, now, body))
    assert taken.status_code == 202, "a webhook that verifies is taken whatever its address's count"
    other_source = httpx.ASGITransport(app=providers_api(registry, database), client=("192.0.2.10", 4444))
    async with httpx.AsyncClient(transport=other_source, base_url="http://api.test") as other:
        forged = await other.post(url, content=body, headers=signed_headers("wrong-secret", now, body))
    assert forged.status_code == 401, "another source's refusals are its own"


async def test_a_secret_stored_in_plaintext_before_sealing_is_sealed_when_loaded(sim: str, tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'legacy.db'}")
    database.migrate()
    with database.unit_of_work() as uow:
        config = {"base_url": lender_url(sim, "late-bank"), "secret": SECRET}
        uow.session.add(
            ProviderRegistrationRow(
                provider_id="late-bank", kind="http", config=config, enabled=True, created_at=datetime.now(UTC)
            )
        )
        uow.commit()
    async with httpx.AsyncClient(transport=PinnedTransport(GUARD)) as http:
        registry = stored_registry(database, http)
        await registry.load_persisted()
        assert list(registry) == ["late-bank"]
        outcomes = await fan_out(registry.adapters(), REQUEST, 1.0)
    assert [(o.provider_id, o.outcome) for o in outcomes] == [("late-bank", "offered")]
    with database.unit_of_work() as uow:
        stored = ProviderRepository(uow.session).registration("late-bank")
        assert stored is not None
        assert "secret" not in stored.config
        assert "secret_sealed" in stored.config
    database.dispose()
