"""A borrower's route reads the caller's key and the borrower's file in ONE worker-thread hop and ONE SQL statement
(get_principal reads the file with the key when the route takes ``CurrentBorrower``); other routes and other roles
never read a file, and the refusals are those of before."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import event

from aggregator.borrower_store import StoredFile
from aggregator.owed import Exposure
from api.auth import Role, issue_key
from api.deps import BorrowerExposure, CurrentBorrower, CurrentPrincipal, get_principal
from store.api import BorrowerRow
from store.base import Base
from store.db import Database

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 27, tzinfo=UTC)


class _Borrowers:
    """Opens the files read with the key (no file read of its own: ``load`` is not there to be called)."""

    def __init__(self) -> None:
        self.loads: list[str] = []

    def file_of(self, stored: StoredFile) -> SimpleNamespace:
        self.loads.append(stored.account.id)
        return SimpleNamespace(id=stored.account.id)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'keys.sqlite'}")
    Base.metadata.create_all(database.engine)
    with database.unit_of_work() as uow:  # b-1 has an account, b-2 none
        uow.session.add(BorrowerRow(id="b-1", wallet_address="0x" + "1" * 40, jurisdiction="US-CA", created_at=NOW))
        uow.commit()
    yield database
    database.dispose()


class _Quoting:
    """The borrowers' open principal, each read recorded (``QuotingService.open_principal``)."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def open_principal(self, borrower_id: str) -> Exposure:
        self.reads.append(borrower_id)
        return Exposure({"USDC": 250_000_000})


def _app(database: Database, borrowers: _Borrowers, quoting: _Quoting | None = None) -> FastAPI:
    app = FastAPI()
    app.state.platform = SimpleNamespace(database=database, borrowers=borrowers, quoting=quoting or _Quoting())

    # the credit-request route's shape: a route-level dependency on the principal, then the borrower's file
    @app.post("/file", dependencies=[Depends(get_principal)])
    async def file(borrower: CurrentBorrower) -> str:
        return str(borrower.id)

    # the credit request's: the file and the borrower's open principal for its exposure check
    @app.post("/exposure", dependencies=[Depends(get_principal)])
    async def exposure(borrower: CurrentBorrower, owed: BorrowerExposure) -> dict[str, int]:
        return dict(owed.by_asset) | {"file": int(borrower.id == "b-1")}

    @app.get("/who")
    async def who(principal: CurrentPrincipal) -> str:
        return principal.role.value

    return app


async def _call(
    app: FastAPI, method: str, path: str, key: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[httpx.Response, int]:
    hops = 0
    real = asyncio.to_thread

    async def counted(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        nonlocal hops
        hops += 1
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        response = await client.request(method, path, headers={"X-API-Key": key})
    monkeypatch.undo()
    return response, hops


async def test_the_key_and_the_borrower_file_are_read_in_one_hop(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    borrowers = _Borrowers()
    app = _app(database, borrowers)
    key = issue_key(database, Role.BORROWER, "b-1", "test")
    statements: list[str] = []

    def executed(*args: Any) -> None:
        statements.append(args[2])

    event.listen(database.engine, "before_cursor_execute", executed)
    response, hops = await _call(app, "POST", "/file", key, monkeypatch)
    event.remove(database.engine, "before_cursor_execute", executed)
    assert response.json() == "b-1"
    assert hops == 1
    assert len(statements) == 1  # the key and the whole file: one SQL statement
    assert borrowers.loads == ["b-1"]
    response, hops = await _call(app, "GET", "/who", key, monkeypatch)  # no file on a route that does not take it
    assert response.json() == "borrower"
    assert borrowers.loads == ["b-1"]


async def test_the_refusals_are_unchanged(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    borrowers = _Borrowers()
    app = _app(database, borrowers)
    admin = issue_key(database, Role.ADMIN, None, "test")
    response, _ = await _call(app, "POST", "/file", admin, monkeypatch)
    assert response.status_code == 403
    assert "needs the role borrower" in response.json()["detail"]
    no_account = issue_key(database, Role.BORROWER, "b-2", "test")
    response, _ = await _call(app, "POST", "/file", no_account, monkeypatch)
    assert response.status_code == 403
    assert response.json()["detail"] == "this API key has no borrower account"
    response, hops = await _call(app, "POST", "/file", "not-a-key", monkeypatch)
    assert response.status_code == 401
    assert hops == 1
    assert borrowers.loads == []  # b-2's key joined no account: nothing to open


async def test_a_credit_requests_exposure_is_read_in_the_same_hop_as_the_key_and_file(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    borrowers, quoting = _Borrowers(), _Quoting()
    app = _app(database, borrowers, quoting)
    key = issue_key(database, Role.BORROWER, "b-1", "test")
    response, hops = await _call(app, "POST", "/exposure", key, monkeypatch)
    assert response.json() == {"USDC": 250_000_000, "file": 1}
    assert hops == 1  # the key, the file and the open principal: one worker-thread hop
    assert quoting.reads == ["b-1"]
    response, hops = await _call(app, "POST", "/file", key, monkeypatch)  # a route that does not take it
    assert (response.json(), hops, quoting.reads) == ("b-1", 1, ["b-1"])
    admin = issue_key(database, Role.ADMIN, None, "test")
    response, _ = await _call(app, "POST", "/exposure", admin, monkeypatch)
    assert response.status_code == 403
    assert quoting.reads == ["b-1"]  # nothing read for a caller the route refuses
