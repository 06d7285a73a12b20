"""Idempotency-Key (issue 17, the IETF draft's semantics) through real routers in-process, on a real database: a
retry with the same key and body replays the stored response (the borrower registered once); another body with the
key is 422; a duplicate while the first still runs is 409; 5xx answers, answers with Retry-After, validation errors
(which changed nothing: the corrected request may use the key) and requests that never finished are not stored; keys
are kept 24 hours, per client, and shared by every process through the database (PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from aggregator.errors import AcceptInProgress
from api import idempotency, problems
from api.auth import Role, ensure_bootstrap_admin, issue_key
from api.idempotency import (
    Claim,
    IdempotencyStore,
    Idempotent,
    KeyInUse,
    KeyReused,
    ResponseSeal,
    StoredResponse,
    response_seal,
)
from api.routers import api_keys, borrowers
from api.settings import Settings
from compliance.errors import PiiError
from store.api import ApiKeyRow, BorrowerRow
from store.db import Database
from store.idempotency import IdempotencyRow

pytestmark = pytest.mark.integration
on_loop = pytest.mark.asyncio(loop_scope="session")

ADMIN = "cm_admin_idempotency_tests"


class Gate:
    """A route under test that runs until the test opens it, or fails as told."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.calls = 0
        self.fail_with: int | None = None


def _app(database: Database, gate: Gate) -> FastAPI:
    app = FastAPI()
    problems.install(app)
    idempotency.install(app)
    app.include_router(borrowers.router)
    app.include_router(api_keys.router)
    slow = APIRouter()

    @slow.post("/slow", status_code=201, dependencies=[Idempotent])
    async def slow_create(body: dict[str, int]) -> dict[str, int]:
        gate.calls += 1
        gate.entered.set()
        await gate.release.wait()
        if gate.fail_with == 500:
            raise RuntimeError("the handler broke")
        if gate.fail_with == 409:
            raise AcceptInProgress("q-1", "its transaction is on its way")
        if gate.fail_with is not None:
            raise HTTPException(gate.fail_with, "try again")
        return body | {"calls": gate.calls}

    app.include_router(slow)
    app.state.platform = SimpleNamespace(database=database, providers={}, settings=Settings())
    return app


def _client(app: FastAPI, key: str = ADMIN) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://api.test", headers={"X-API-Key": key})


def _sqlite(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'idempotency.db'}")
    database.migrate()
    ensure_bootstrap_admin(database, ADMIN)
    return database


def _count(database: Database, model: type[object]) -> int:
    with database.unit_of_work() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(model)) or 0)


@on_loop
async def test_a_retry_replays_the_first_response_and_another_body_is_refused(tmp_path: Path) -> None:
    database = _sqlite(tmp_path)
    wallet = "0x" + "ab" * 20
    async with _client(_app(database, Gate())) as client:
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        first = await client.post("/v1/borrowers", json={"wallet_address": wallet}, headers=headers)
        assert first.status_code == 201, first.text
        again = await client.post("/v1/borrowers", json={"wallet_address": wallet}, headers=headers)
        assert again.status_code == 201, again.text
        assert again.json() == first.json()  # the same borrower and its key, not a 409 "already registered"
        assert again.headers["idempotent-replayed"] == "true"
        # the answer carries the borrower's API key (shown once): stored sealed, never readable in the database
        with database.unit_of_work() as uow:
            stored = uow.session.scalars(select(IdempotencyRow).where(IdempotencyRow.path == "/v1/borrowers")).one()
            assert stored.body is not None
            sealed, owner = stored.body, stored.client
        assert first.json()["api_key"].encode() not in sealed
        assert wallet.encode() not in sealed
        claim = Claim(owner, headers["Idempotency-Key"], "")
        assert response_seal(Settings().pii_master_key).open(claim, sealed) == first.content
        with pytest.raises(PiiError):
            ResponseSeal(b"\x01" * 32).open(claim, sealed)  # another platform's master key
        with pytest.raises(PiiError):
            response_seal(Settings().pii_master_key).open(Claim(owner, "another key", ""), sealed)
        assert again.headers["content-type"] == "application/json"
        assert "idempotent-replayed" not in first.headers
        assert _count(database, BorrowerRow) == 1

        other = await client.post("/v1/borrowers", json={"wallet_address": "0x" + "cd" * 20}, headers=headers)
        assert other.status_code == 422
        assert other.headers["content-type"] == problems.PROBLEM_JSON
        assert other.json()["errors"][0]["field"] == "Idempotency-Key"
        elsewhere = await client.post("/v1/api-keys", json={"role": "auditor", "label": "x"}, headers=headers)
        assert elsewhere.status_code == 422  # the same key on another operation is another request

        # a structured-field string names the same key; without the header nothing is deduplicated
        quoted = {"Idempotency-Key": f'"{headers["Idempotency-Key"]}"'}
        assert (await client.post("/v1/borrowers", json={"wallet_address": wallet}, headers=quoted)).json() == (
            first.json()
        )
        for _ in range(2):
            plain = await client.post("/v1/api-keys", json={"role": "auditor", "label": "no key"})
            assert plain.status_code == 201
        # a refusal of what the operation did is a 4xx stored and replayed: the retry is refused the same way
        taken = {"Idempotency-Key": "wallet-taken"}
        refused = await client.post("/v1/borrowers", json={"wallet_address": wallet}, headers=taken)
        assert refused.status_code == 409
        replayed = await client.post("/v1/borrowers", json={"wallet_address": wallet}, headers=taken)
        assert replayed.json() == refused.json()
        assert replayed.headers["idempotent-replayed"] == "true"
        # a validation error changed nothing: it is not kept, and the corrected request runs with the same key
        bad = {"Idempotency-Key": "bad-body"}
        for _ in range(2):
            invalid = await client.post("/v1/api-keys", json={"role": "auditor"}, headers=bad)
            assert invalid.status_code == 422
            assert invalid.json()["type"].endswith("/validation-error")
            assert "idempotent-replayed" not in invalid.headers
        corrected = await client.post("/v1/api-keys", json={"role": "auditor", "label": "fixed"}, headers=bad)
        assert corrected.status_code == 201, corrected.text
        again = await client.post("/v1/api-keys", json={"role": "auditor", "label": "fixed"}, headers=bad)
        assert (again.json(), again.headers["idempotent-replayed"]) == (corrected.json(), "true")
    assert _count(database, ApiKeyRow) == 5  # the bootstrap key, the borrower's, the two without a key, the fixed one
    database.dispose()


@on_loop
async def test_keys_belong_to_one_client(tmp_path: Path) -> None:
    database = _sqlite(tmp_path)
    other_admin = issue_key(database, Role.ADMIN, None, "another admin")
    app = _app(database, Gate())
    async with _client(app) as mine, _client(app, other_admin) as theirs:
        headers = {"Idempotency-Key": "shared-value"}
        one = await mine.post("/v1/api-keys", json={"role": "auditor", "label": "a"}, headers=headers)
        two = await theirs.post("/v1/api-keys", json={"role": "auditor", "label": "b"}, headers=headers)
        assert (one.status_code, two.status_code) == (201, 201)
        assert one.json()["id"] != two.json()["id"]
    database.dispose()


@on_loop
async def test_a_caller_the_routes_role_guard_refuses_claims_no_key(tmp_path: Path) -> None:
    """An auditor's key on an admin route, a borrower route by an admin: 403, and nothing is written under the key
    (the operation never started, as with a refused body in the IETF draft). Before, the key was claimed before the
    route's role guard ran and its 403 stored for 24 hours: any valid key wrote rows on routes it may not use."""
    database = _sqlite(tmp_path)
    auditor = issue_key(database, Role.AUDITOR, None, "an auditor")
    app = _app(database, Gate())
    async with _client(app, auditor) as client, _client(app) as admin:
        for _ in range(2):
            headers = {"Idempotency-Key": "not-mine"}
            refused = await client.post("/v1/api-keys", json={"role": "admin", "label": "me"}, headers=headers)
            assert refused.status_code == 403, refused.text
            assert "idempotent-replayed" not in refused.headers
        wallet = {"wallet_address": "0x" + "ef" * 20}
        borrower_only = await admin.post("/v1/borrowers/me/kyc", json=wallet, headers={"Idempotency-Key": "k"})
        assert borrower_only.status_code == 403, borrower_only.text
    assert _count(database, IdempotencyRow) == 0
    database.dispose()


@on_loop
async def test_a_duplicate_while_the_first_runs_is_409_and_5xx_answers_are_not_stored(tmp_path: Path) -> None:
    database = _sqlite(tmp_path)
    gate = Gate()
    async with _client(_app(database, gate)) as client:
        headers = {"Idempotency-Key": "slow-1"}
        first = asyncio.create_task(client.post("/slow", json={"n": 1}, headers=headers))
        await asyncio.wait_for(gate.entered.wait(), 10)
        duplicate = await client.post("/slow", json={"n": 1}, headers=headers)
        assert duplicate.status_code == 409
        assert duplicate.headers["retry-after"] == "1"
        gate.release.set()
        assert (await first).json() == {"n": 1, "calls": 1}
        assert (await client.post("/slow", json={"n": 1}, headers=headers)).json() == {"n": 1, "calls": 1}

        # a 503, an unhandled error and an accept in progress (409 with Retry-After) are not kept: the retry runs
        # again and its answer is kept (the in-progress 409 used to be replayed for 24 hours after the loan opened)
        for failure in (503, 500, 409):
            gate.fail_with = failure
            key = {"Idempotency-Key": f"fails-{failure}"}
            failed = await client.post("/slow", json={"n": 2}, headers=key)
            assert failed.status_code == failure
            if failure == 409:
                assert failed.headers["retry-after"] == "5"
            gate.fail_with = None
            calls = gate.calls
            retried = await client.post("/slow", json={"n": 2}, headers=key)
            assert retried.status_code == 201
            assert retried.json()["calls"] == calls + 1
            assert "idempotent-replayed" not in retried.headers

        # a request that never finished (the client went away, the task was cancelled) releases its key
        gate.release.clear()
        gate.entered.clear()
        key = {"Idempotency-Key": "cancelled"}
        abandoned = asyncio.create_task(client.post("/slow", json={"n": 3}, headers=key))
        await asyncio.wait_for(gate.entered.wait(), 10)
        abandoned.cancel()
        await asyncio.gather(abandoned, return_exceptions=True)
        for _ in range(100):
            if _count(database, IdempotencyRow) == 4:  # slow-1, fails-503, fails-500, fails-409
                break
            await asyncio.sleep(0.05)
        gate.release.set()
        calls = gate.calls
        assert (await client.post("/slow", json={"n": 3}, headers=key)).json() == {"n": 3, "calls": calls + 1}
    database.dispose()


def test_keys_are_kept_24_hours_and_a_dead_claim_is_taken_over(tmp_path: Path) -> None:
    database = _sqlite(tmp_path)
    store = IdempotencyStore(database, response_seal(Settings().pii_master_key))
    now = datetime.now(UTC)
    claim = Claim("admin:key_x", "k", "f" * 64)
    assert store.begin(claim, "POST", "/x", now) is None
    with pytest.raises(KeyInUse):
        store.begin(claim, "POST", "/x", now + timedelta(minutes=1))
    with pytest.raises(KeyReused):
        store.begin(Claim("admin:key_x", "k", "e" * 64), "POST", "/x", now)
    # its process died: after the lock another request takes the key over
    assert store.begin(claim, "POST", "/x", now + timedelta(minutes=12)) is None
    store.complete(claim, StoredResponse(201, [("content-type", "application/json")], b"{}"))
    assert store.begin(claim, "POST", "/x", now + timedelta(hours=23, minutes=59)) == StoredResponse(
        201, [("content-type", "application/json")], b"{}"
    )
    with database.unit_of_work() as uow:
        row = uow.session.scalars(select(IdempotencyRow)).one()
        assert row.expires_at - row.created_at == timedelta(hours=24)
    # a day later the key is forgotten (purged) and runs again
    assert store.begin(claim, "POST", "/x", now + timedelta(hours=24, seconds=1)) is None
    # a record stored before bodies were sealed is replayed as it was
    store.complete(claim, StoredResponse(201, [], b"{}"))
    with database.unit_of_work() as uow:
        uow.session.scalars(select(IdempotencyRow)).one().body = b'{"before": "sealing"}'
        uow.commit()
    assert store.begin(claim, "POST", "/x", now + timedelta(hours=24, seconds=2)) == StoredResponse(
        201, [], b'{"before": "sealing"}'
    )
    database.dispose()


@on_loop
async def test_every_process_shares_the_keys_through_postgresql(postgres_schema: Callable[[str], str]) -> None:
    url = postgres_schema("idempotency_test")
    databases = [Database(url), Database(url)]  # two processes' engines on one database
    databases[0].migrate()
    ensure_bootstrap_admin(databases[0], ADMIN)
    try:
        async with _client(_app(databases[0], Gate())) as one, _client(_app(databases[1], Gate())) as two:
            # 20 keys, each sent to both at once: the second claim of a key usually meets the first's row inserted
            # and not yet committed, and its insert fails (caught, then read as in use: 409, never a 500)
            for label in (f"pg-{n}" for n in range(20)):
                headers = {"Idempotency-Key": str(uuid.uuid4())}
                body = {"role": "auditor", "label": label}
                first, second = await asyncio.gather(
                    one.post("/v1/api-keys", json=body, headers=headers),
                    two.post("/v1/api-keys", json=body, headers=headers),
                )
                statuses = sorted([first.status_code, second.status_code])
                assert statuses in ([201, 201], [201, 409]), (first.text, second.text)
                replay = await two.post("/v1/api-keys", json=body, headers=headers)
                created = first if first.status_code == 201 else second
                assert replay.json() == created.json()
                with databases[0].unit_of_work() as uow:
                    count = select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.label == label)
                    assert uow.session.scalar(count) == 1
    finally:
        for database in databases:
            database.dispose()


class _DatabaseAway:
    """The key's store refusing as PostgreSQL does while it restarts (``OperationalError``), until ``back()``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = False
        self.refused: list[str] = []
        for name in ("release", "complete"):
            monkeypatch.setattr(IdempotencyStore, name, self._refusing(name, getattr(IdempotencyStore, name)))

    def _refusing(self, name: str, real: Callable[..., None]) -> Callable[..., None]:
        def call(store: IdempotencyStore, *args: object, **kwargs: object) -> None:
            if self.down:
                self.refused.append(name)
                raise OperationalError(name, {}, Exception("the database system is shutting down"))
            real(store, *args, **kwargs)

        return call


async def _until_not_in_use(send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    for _ in range(100):
        response = await send()
        if response.status_code != 409:
            return response
        assert response.headers["retry-after"] == "1"
        await asyncio.sleep(0.1)
    raise AssertionError("the key stayed in use")


@on_loop
async def test_a_keyed_request_caught_by_a_database_outage_is_answered_and_its_key_freed_once_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request fails on the outage and so does the key's release: the client still gets the 503 problem with
    Retry-After (not a bare 500), and once the database is back the key is released in the background, so the
    same request asked again runs (not a 409 for the key's 11-minute lock)."""
    database = _sqlite(tmp_path)
    away = _DatabaseAway(monkeypatch)
    runs: list[int] = []
    app = _app(database, Gate())
    router = APIRouter()

    @router.post("/write", status_code=201, dependencies=[Idempotent])
    async def write(body: dict[str, int]) -> dict[str, int]:
        runs.append(body["n"])
        if len(runs) == 1:
            away.down = True  # PostgreSQL goes away while the request runs (its key claimed before)
            raise OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))
        return body

    app.include_router(router)
    headers = {"Idempotency-Key": "k-outage"}
    async with _client(app) as client:
        first = await client.post("/write", json={"n": 1}, headers=headers)
        assert first.status_code == 503, first.text
        assert first.headers["content-type"] == "application/problem+json"
        assert first.headers["retry-after"] == str(problems.DATABASE_RETRY_AFTER_SECONDS)
        assert away.refused == ["release"]
        away.down = False
        again = await _until_not_in_use(lambda: client.post("/write", json={"n": 1}, headers=headers))
        assert again.status_code == 201, again.text
    assert runs == [1, 1]
    database.dispose()


@on_loop
async def test_an_answer_the_database_could_not_store_is_sent_and_stored_once_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operation succeeded but the database went away before its answer was stored with the key: the client
    gets the answer (a new borrower's API key is shown once), and a retry with the key, once the database is
    back, replays it instead of registering again."""
    database = _sqlite(tmp_path)
    away = _DatabaseAway(monkeypatch)
    wallet = "0x" + "ef" * 20
    headers = {"Idempotency-Key": "k-complete"}
    original = IdempotencyStore.complete

    def going_away(store: IdempotencyStore, claim: Claim, response: StoredResponse) -> None:
        if not away.refused:
            away.down = True  # the borrower committed; the database goes before the answer is stored
        original(store, claim, response)

    monkeypatch.setattr(IdempotencyStore, "complete", going_away)
    async with _client(_app(database, Gate())) as client:
        first = await client.post("/v1/borrowers", json={"wallet_address": wallet}, headers=headers)
        assert first.status_code == 201, first.text
        assert away.refused == ["complete"]
        away.down = False
        again = await _until_not_in_use(
            lambda: client.post("/v1/borrowers", json={"wallet_address": wallet}, headers=headers)
        )
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert _count(database, BorrowerRow) == 1
    database.dispose()
