"""Provider registrations shared by every process (one real PostgreSQL, two API processes' registries, each with its
own engine and its own poll, a real simulated lender over HTTP): a lender an admin registers through one process's
API is asked by the other's next fan-out within about a second, a registration changed in the store is rebuilt
there, and one deregistered through the API leaves both; registered again, it comes back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from aggregator.fanout import fan_out
from api.auth import Role, ensure_key
from providers.base import ProviderAdapter
from providers.destinations import PinnedTransport
from providers.registry import ProviderRegistry
from providers.registry_sync import follow_registrations
from providers.sim.fleet import SimLender
from store.db import Database
from store.providers import ProviderRepository
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

ADMIN = "cm_admin_registration_sync"
POLL_SECONDS = 0.2
#: a registration must reach the other process within this (its poll is POLL_SECONDS; the issue asks for 1 s)
WITHIN_SECONDS = 1.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sim_server([SimLender(lender_id="late-bank", secret=SECRET)], Path(tmp_path_factory.mktemp("sim"))) as base:
        yield base


Processes = tuple[httpx.AsyncClient, ProviderRegistry, ProviderRegistry]


@pytest.fixture
async def processes(postgres_schema: Callable[[str], str]) -> AsyncIterator[Processes]:
    """Process A's API (its own registry and engine) and process B's registry following the store."""
    url = postgres_schema("registration_sync")
    first, second = Database(url), Database(url)
    first.migrate()
    ensure_key(first, ADMIN, Role.ADMIN, None, "test admin")
    async with httpx.AsyncClient(transport=PinnedTransport(GUARD)) as http:
        a, b = stored_registry(first, http), stored_registry(second, http)
        await a.load_persisted()
        await b.load_persisted()
        follows = [asyncio.create_task(follow_registrations(r, POLL_SECONDS)) for r in (a, b)]
        transport = httpx.ASGITransport(app=providers_api(a, first))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://a.test") as api:
                yield api, a, b
        finally:
            for task in follows:
                task.cancel()
            await asyncio.gather(*follows, return_exceptions=True)
    first.dispose()
    second.dispose()


async def _until(condition: Callable[[], bool], seconds: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"{what} not seen within {seconds} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def _ids(adapters: list[ProviderAdapter]) -> list[str]:
    return [adapter.provider_id for adapter in adapters]


async def test_a_registration_through_one_process_is_quoted_by_another_within_a_second(
    sim: str, processes: Processes
) -> None:
    api, a, b = processes
    quoting_b = b.adapters()  # what process B's QuotingService holds: the same live list
    admin = {"X-API-Key": ADMIN}
    body = registration(sim, resilience={"fail_max": 7, "quote_attempts": 1})
    created = await api.post("/v1/providers", json=body, headers=admin)
    assert created.status_code == 201, created.text
    await _until(lambda: _ids(quoting_b) == ["late-bank"], WITHIN_SECONDS, "the registration in process B")
    outcomes = await fan_out(quoting_b, REQUEST, 1.0)
    assert [(o.provider_id, o.outcome) for o in outcomes] == [("late-bank", "offered")], "B opens the sealed secret"
    assert b.source("late-bank") == "api"
    registered_in_a = a.get_provider("late-bank")
    await asyncio.sleep(3 * POLL_SECONDS)
    assert a.get_provider("late-bank") is registered_in_a, "the registering process does not rebuild its own"

    # a change of the stored registration (its policy) is rebuilt in every process, in the list's same place
    def change() -> None:
        with b._database.unit_of_work() as uow:  # type: ignore[union-attr]
            repository = ProviderRepository(uow.session)
            row = repository.registration("late-bank")
            assert row is not None
            row.resilience = {"fail_max": 3, "quote_attempts": 1}
            repository.bump_version()
            uow.commit()

    await asyncio.to_thread(change)
    await _until(lambda: b.get_provider("late-bank").policy.fail_max == 3, WITHIN_SECONDS, "the change in B")
    await _until(lambda: a.get_provider("late-bank").policy.fail_max == 3, WITHIN_SECONDS, "the change in A")
    assert _ids(quoting_b) == ["late-bank"]
    assert quoting_b[0] is b.get_provider("late-bank")

    provider_key = {"X-API-Key": created.json()["api_key"]}
    assert (await api.get("/v1/providers/late-bank/health", headers=provider_key)).status_code == 200
    removed = await api.delete("/v1/providers/late-bank", headers=admin)
    assert removed.status_code == 204, removed.text
    refused = await api.get("/v1/providers/late-bank/health", headers=provider_key)
    assert refused.status_code == 401, "a deregistered provider's key is revoked with it"
    assert "late-bank" not in a, "gone from the deregistering process at once"
    assert _ids(a.adapters()) == []
    await _until(lambda: quoting_b == [], WITHIN_SECONDS, "the deregistration in process B")
    assert await fan_out(quoting_b, REQUEST, 0.5) == []
    again = await api.delete("/v1/providers/late-bank", headers=admin)
    assert again.status_code == 404
    assert again.headers["content-type"].startswith("application/problem+json")

    back = await api.post("/v1/providers", json=body, headers=admin)
    assert back.status_code == 201, back.text
    await _until(lambda: _ids(quoting_b) == ["late-bank"], WITHIN_SECONDS, "the registration again in B")
    assert b.get_provider("late-bank").policy.fail_max == 7, "registered again with the body's policy"
