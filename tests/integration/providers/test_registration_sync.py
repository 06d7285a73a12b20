"""Provider registrations shared by every process (one real PostgreSQL, two API processes' registries, each with its
own engine and its own poll, a real simulated lender over HTTP): a lender an admin registers through one process's
API is asked by the other's next fan-out within about a second, a registration changed in the store is rebuilt
there, and one deregistered through the API stops quoting in both (kept in both, to serve its loans); registered
again, it quotes again.

"Within about a second" is one poll interval (0.2 s here, ``CREDITMESH_PROVIDERS_RELOAD_SECONDS`` = 0.5 s by default)
and one read: each change must be in place when the first poll that starts after it ends. That is asserted by
counting each registry's polls, not by a wall clock, which a loaded machine stretches past any bound (1.18 s once in
CI for this 0.2 s poll)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from aggregator.fanout import fan_out
from api.auth import Role, ensure_key, revoke_subject_keys
from compliance.adverse_action import Party
from providers.base import ProviderAdapter
from providers.destinations import PinnedTransport
from providers.registry import ProviderRegistry
from providers.registry_sync import follow_registrations
from providers.sim.fleet import SimLender
from store.compliance import AuditEntryRow
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
#: how long a poll may take before the test stops waiting for it (a hung poll fails the test, a slow one does not)
HANG_SECONDS = 60.0


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


@dataclass
class _Polls:
    """One registry's polls (``follow_registrations``' calls of ``sync_persisted``), numbered as they start."""

    started: int = 0
    finished: set[int] = field(default_factory=set)

    @classmethod
    def of(cls, registry: ProviderRegistry, monkeypatch: pytest.MonkeyPatch) -> _Polls:
        polls, sync = cls(), registry.sync_persisted

        async def counted() -> bool:
            polls.started += 1
            number = polls.started
            try:
                return await sync()
            finally:
                polls.finished.add(number)

        monkeypatch.setattr(registry, "sync_persisted", counted)
        return polls

    def next(self) -> int:
        """The number of the first poll to start from now on."""
        return self.started + 1

    async def sees(self, poll: int, condition: Callable[[], bool], what: str) -> None:
        """``condition`` holds by the time poll number ``poll`` has ended."""
        deadline = time.monotonic() + HANG_SECONDS
        while not condition():  # (no await between this and the next line: no poll ends in between)
            assert poll not in self.finished, f"{what} not seen by the first poll after it"
            assert time.monotonic() < deadline, f"{what}: poll {poll} has not ended in {HANG_SECONDS} s"
            await asyncio.sleep(0.02)

    async def ended(self, poll: int) -> None:
        deadline = time.monotonic() + HANG_SECONDS
        while poll not in self.finished:
            assert time.monotonic() < deadline, f"poll {poll} has not ended in {HANG_SECONDS} s"
            await asyncio.sleep(0.02)


def _ids(adapters: list[ProviderAdapter]) -> list[str]:
    return [adapter.provider_id for adapter in adapters]


async def test_a_registration_through_one_process_is_quoted_by_another_within_a_second(
    sim: str, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, a, b = processes
    polls_a, polls_b = _Polls.of(a, monkeypatch), _Polls.of(b, monkeypatch)
    quoting_b = b.adapters()  # what process B's QuotingService holds: the same live list
    admin = {"X-API-Key": ADMIN}
    named = {"legal_name": "Late Bank, N.A.", "address": "4 Harbour Road, Springfield, IL 62701"}
    body = registration(sim, resilience={"fail_max": 7, "quote_attempts": 1}, **named)
    created = await api.post("/v1/providers", json=body, headers=admin)
    assert created.status_code == 201, created.text
    await polls_b.sees(polls_b.next(), lambda: _ids(quoting_b) == ["late-bank"], "the registration in process B")
    # the creditor its notices name, in every process (12 CFR 1002.9(g))
    assert b.get_provider("late-bank").creditor() == Party(named["legal_name"], named["address"])
    outcomes = await fan_out(quoting_b, REQUEST, 1.0)
    assert [(o.provider_id, o.outcome) for o in outcomes] == [("late-bank", "offered")], "B opens the sealed secret"
    assert b.source("late-bank") == "api"
    registered_in_a = a.get_provider("late-bank")
    await polls_a.ended(polls_a.next() + 1)  # two polls of its own
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
    next_b, next_a = polls_b.next(), polls_a.next()
    await polls_b.sees(next_b, lambda: b.get_provider("late-bank").policy.fail_max == 3, "the change in B")
    await polls_a.sees(next_a, lambda: a.get_provider("late-bank").policy.fail_max == 3, "the change in A")
    assert _ids(quoting_b) == ["late-bank"]
    assert quoting_b[0] is b.get_provider("late-bank")

    # so is a change of its creditor alone: every process's notices name the new one
    def rename() -> None:
        with b._database.unit_of_work() as uow:  # type: ignore[union-attr]
            repository = ProviderRepository(uow.session)
            row = repository.registration("late-bank")
            assert row is not None
            row.legal_name, row.postal_address = "Late Bank & Trust, N.A.", "5 Harbour Road"
            repository.bump_version()
            uow.commit()

    await asyncio.to_thread(rename)
    renamed = Party("Late Bank & Trust, N.A.", "5 Harbour Road")
    next_b, next_a = polls_b.next(), polls_a.next()
    await polls_b.sees(next_b, lambda: b.get_provider("late-bank").creditor() == renamed, "the new creditor in B")
    await polls_a.sees(next_a, lambda: a.get_provider("late-bank").creditor() == renamed, "the new creditor in A")
    assert quoting_b[0] is b.get_provider("late-bank")

    provider_key = {"X-API-Key": created.json()["api_key"]}
    assert (await api.get("/v1/providers/late-bank/health", headers=provider_key)).status_code == 200
    removed = await api.delete("/v1/providers/late-bank", headers=admin)
    assert removed.status_code == 204, removed.text
    removed_by_b = polls_b.next()
    refused = await api.get("/v1/providers/late-bank/health", headers=provider_key)
    assert refused.status_code == 401, "a deregistered provider's key is revoked with it"
    assert _ids(a.adapters()) == [], "no longer quoting in the deregistering process at once"
    assert a.deregistered("late-bank"), "kept there, to serve its loans"
    await polls_b.sees(removed_by_b, lambda: quoting_b == [], "the deregistration in process B")
    assert b.deregistered("late-bank"), "kept in process B too"
    assert await fan_out(quoting_b, REQUEST, 0.5) == []
    again = await api.delete("/v1/providers/late-bank", headers=admin)
    assert again.status_code == 404
    assert again.headers["content-type"].startswith("application/problem+json")

    back = await api.post("/v1/providers", json=body, headers=admin)
    assert back.status_code == 201, back.text
    await polls_b.sees(polls_b.next(), lambda: _ids(quoting_b) == ["late-bank"], "the registration again in B")
    assert b.get_provider("late-bank").policy.fail_max == 7, "registered again with the body's policy"
    assert not a.deregistered("late-bank")
    assert not b.deregistered("late-bank")
    assert _ids(a.adapters()) == ["late-bank"]


async def test_a_deregistration_whose_key_revocation_fails_leaves_both_in_place_and_a_retry_finishes_it(
    sim: str, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registration is disabled and its keys revoked in one transaction. Before, the registration was disabled
    and committed first: a failed revocation answered 503 ("ask again"), the retry found no registration (404) and
    the removed lender's key kept reading its loans."""
    api, a, _ = processes
    admin = {"X-API-Key": ADMIN}
    created = await api.post("/v1/providers", json=registration(sim), headers=admin)
    assert created.status_code == 201, created.text
    provider_key = {"X-API-Key": created.json()["api_key"]}

    where = "api.routers.providers.revoke_subject_keys"

    def failing_once(*args: Any, **kwargs: Any) -> list[str]:
        monkeypatch.setattr(where, revoke_subject_keys)
        raise OperationalError("UPDATE api_keys", {}, Exception("the server closed the connection"))

    monkeypatch.setattr(where, failing_once)
    failed = await api.delete("/v1/providers/late-bank", headers=admin)
    assert failed.status_code == 503, failed.text
    assert _ids(a.adapters()) == ["late-bank"], "still quoted: nothing was written"
    assert (await api.get("/v1/providers/late-bank/health", headers=provider_key)).status_code == 200

    retried = await api.delete("/v1/providers/late-bank", headers=admin)
    assert retried.status_code == 204, retried.text
    assert _ids(a.adapters()) == []
    assert (await api.get("/v1/providers/late-bank/health", headers=provider_key)).status_code == 401
    database = a._database
    assert database is not None
    with database.unit_of_work() as uow:
        revoked = uow.session.scalars(select(AuditEntryRow).where(AuditEntryRow.kind == "key-revoked")).all()
        assert [(row.subject, row.data["why"]) for row in revoked] == [("late-bank", "provider late-bank deregistered")]
        assert str(revoked[0].data["by"]).startswith("admin:key_"), "the admin who deregistered it"


async def test_two_processes_registering_one_provider_at_once_answer_201_and_409(
    sim: str, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both processes read no registration, then both insert one: the second insert's unique key refuses it. That
    IntegrityError reached the admin as a 500; it is the 409 any second registration of the id is."""
    api, _, b = processes
    admin = {"X-API-Key": ADMIN}
    assert b._database is not None
    transport = httpx.ASGITransport(app=providers_api(b, b._database))
    async with httpx.AsyncClient(transport=transport, base_url="http://b.test") as api_b:
        first = await api.post("/v1/providers", json=registration(sim), headers=admin)
        assert first.status_code == 201, first.text
        # process B read the registrations before A's commit: it saw none
        monkeypatch.setattr(ProviderRepository, "registration", lambda self, provider_id: None)
        second = await api_b.post("/v1/providers", json=registration(sim), headers=admin)
    assert second.status_code == 409, second.text
    assert second.json()["detail"] == "provider 'late-bank' is already registered"
    assert second.headers["content-type"].startswith("application/problem+json")
    assert "late-bank" not in b, "the loser lists nothing it did not persist"
