"""The audit worker seals new entries about every second, between its anchoring rounds: an entry written after the
first round (which anchors) is sealed long before the next anchoring is due, and a database outage is waited out."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from eth_utils.address import to_checksum_address

from api.audit_jobs import AnchorChain, run_anchoring
from chain.client import ChainClient
from compliance.audit import AuditKind
from compliance.audit_anchor import AnchorContract
from store.compliance import SqlAuditLog
from store.db import Database
from tests.chaos.support import RestartablePostgres

pytestmark = pytest.mark.integration


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    db.migrate()
    yield db
    db.dispose()


def _append(database: Database, subject: str) -> None:
    with database.unit_of_work() as uow:
        SqlAuditLog(uow.session).append(AuditKind.KEY_ISSUED, subject, {"keyId": subject}, datetime.now(UTC))
        uow.commit()


def _pending(database: Database) -> int:
    with database.unit_of_work() as uow:
        return SqlAuditLog(uow.session).pending()


async def _sealed(database: Database, deadline: float = 30.0) -> bool:
    """Whether nothing is pending within ``deadline`` seconds (wide: a shared machine)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline
    while loop.time() < until:
        if await asyncio.to_thread(_pending, database) == 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_entries_are_sealed_every_second_between_anchors(database: Database) -> None:
    _append(database, "before-start")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_anchoring(database, [], stop, interval=3_600, seal_interval=0.1))
    try:
        assert await _sealed(database)  # the first round: sealed and (no chains here) anchored
        _append(database, "after-the-first-round")
        assert _pending(database) == 1
        assert await _sealed(database), "sealed by a sealing round, an hour before the next anchoring"
    finally:
        stop.set()
        await worker
    with database.unit_of_work() as uow:
        subjects = [entry.subject for entry in SqlAuditLog(uow.session).entries()]
    assert subjects == ["before-start", "after-the-first-round"]


async def test_sealing_goes_on_after_the_database_was_down(tmp_path: Path) -> None:
    """PostgreSQL stopped for longer than a lease renewal, then started again: the worker waits it out (it used to end
    at the first failed lease read, and nothing was sealed or anchored again until the process restarted)."""
    postgres = RestartablePostgres(tmp_path / "pg")
    postgres.start()
    database = Database(postgres.url)
    database.migrate()
    stop = asyncio.Event()
    ttl = timedelta(seconds=1.5)
    worker = asyncio.create_task(run_anchoring(database, [], stop, interval=3_600, seal_interval=0.1, ttl=ttl))
    try:
        _append(database, "before-the-outage")
        assert await _sealed(database)
        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(2.5)  # every lease read and renewal fails meanwhile
        await asyncio.to_thread(postgres.start)
        assert not worker.done(), worker
        await asyncio.to_thread(_append, database, "after-the-outage")
        assert await _sealed(database), "sealed again once the database is back"
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
        database.dispose()
        postgres.stop()


async def test_a_chain_that_cannot_anchor_does_not_stop_the_sealing(database: Database) -> None:
    """Anchoring fails every time on a chain (here: no audit anchor key's transactions there): the log is still
    sealed every second between the anchoring rounds (the worker ended on it, and was started again a minute later
    at most, anchoring first again, so sealing came once a minute)."""
    contract = AnchorContract("nowhere", to_checksum_address("0x" + "ab" * 20), 0)
    unanchorable = AnchorChain(cast(ChainClient, None), contract, transactions=None)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_anchoring(database, [unanchorable], stop, interval=3_600, seal_interval=0.1))
    try:
        _append(database, "first")
        assert await _sealed(database)
        _append(database, "second")
        assert await _sealed(database, deadline=10.0), "sealed between anchorings"
        assert not worker.done()
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
