"""The lease primitive: one holder per (kind, chain), takeover after expiry with a new fencing token, and a stale
holder's write refused inside its own transaction — on SQLite (one process) and across engines on PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from store.db import Database
from store.leases import Lease, LeaseLost, LeaseRow, SqlLeaseStore

pytestmark = pytest.mark.integration

TTL = timedelta(seconds=30)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_schema: Callable[[str], str]
) -> Iterator[tuple[Database, Database]]:
    """Two databases (two engines, as two processes would have) on one store, migrated once for the module: each
    test holds leases of its own (kind, chain id)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('leases') / 'leases.db'}"
    else:
        url = postgres_schema("lease_test")
    first, second = Database(url), Database(url)
    first.migrate()
    try:
        yield first, second
    finally:
        first.dispose()
        second.dispose()


def _write_fenced(database: Database, store: SqlLeaseStore, lease: Lease) -> None:
    """A holder's write: a marker row changed in the same transaction as the fence check."""
    with database.unit_of_work() as uow:
        store.fence(uow.session, lease)
        row = uow.session.get(LeaseRow, ("marker", 0))
        if row is None:
            uow.session.add(
                LeaseRow(
                    kind="marker",
                    chain_id=0,
                    holder=lease.holder,
                    token=0,
                    expires_at=lease.expires_at,
                    updated_at=lease.expires_at,
                )
            )
        else:
            row.holder = lease.holder
        uow.commit()


async def test_one_holder_then_takeover_fences_the_old_one(databases: tuple[Database, Database]) -> None:
    one, two = SqlLeaseStore(databases[0].sessions), SqlLeaseStore(databases[1].sessions)
    first = await one.acquire("indexer", 31337, "process-a", TTL)
    assert first is not None
    assert first.token == 1
    assert await two.acquire("indexer", 31337, "process-b", TTL) is None  # held and unexpired
    assert await two.acquire("indexer", 31338, "process-b", TTL) is not None  # another chain: its own lease
    renewed = await one.renew(first, TTL)
    assert renewed.token == first.token
    assert renewed.expires_at >= first.expires_at
    _write_fenced(databases[0], one, first)

    # process-a stops renewing; once its lease has expired process-b takes over with a new token
    expired = await one.renew(first, timedelta(seconds=-1))
    second = await two.acquire("indexer", 31337, "process-b", TTL)
    assert second is not None
    assert second.token == expired.token + 1

    with pytest.raises(LeaseLost):  # the old holder's write is refused and rolled back
        _write_fenced(databases[0], one, first)
    with pytest.raises(LeaseLost):
        await one.renew(first, TTL)
    _write_fenced(databases[1], two, second)
    with databases[0].unit_of_work() as uow:
        assert uow.session.scalar(select(LeaseRow.holder).where(LeaseRow.kind == "marker")) == "process-b"

    # a release lets the next holder in at once, and the token still only grows
    await one.release(first)  # a lost lease's release changes nothing
    assert await one.acquire("indexer", 31337, "process-a", TTL) is None
    await two.release(second)
    third = await one.acquire("indexer", 31337, "process-a", TTL)
    assert third is not None
    assert third.token == second.token + 1


async def test_concurrent_acquirers_get_one_lease(databases: tuple[Database, Database]) -> None:
    stores = [SqlLeaseStore(databases[i % 2].sessions) for i in range(6)]
    results = await asyncio.gather(*(store.acquire("keeper", 1, f"holder-{i}", TTL) for i, store in enumerate(stores)))
    held = [lease for lease in results if lease is not None]
    assert len(held) == 1
    assert held[0].token == 1


def test_a_takeover_waits_for_the_holders_write_in_flight(databases: tuple[Database, Database]) -> None:
    """The fence holds its shared row lock until the write commits, so a takeover cannot slip in between the
    check and the commit (PostgreSQL; on SQLite the writer's transaction serializes everything anyway)."""
    first_db, second_db = databases
    store = SqlLeaseStore(first_db.sessions)
    lease = asyncio.run(store.acquire("outbox", 7, "a", timedelta(seconds=-1)))  # held, already expired
    assert lease is not None
    checked, taken = threading.Event(), threading.Event()
    order: list[str] = []

    def takeover() -> None:
        checked.wait(10)
        result = asyncio.run(SqlLeaseStore(second_db.sessions).acquire("outbox", 7, "b", TTL))
        order.append("takeover" if result is not None else "refused")
        taken.set()

    thread = threading.Thread(target=takeover)
    thread.start()
    with first_db.unit_of_work() as uow:
        store.fence(uow.session, lease)
        checked.set()
        taken.wait(0.5)  # on PostgreSQL the takeover is blocked on our shared lock meanwhile
        order.append("write")
        uow.commit()
    thread.join(10)
    if first_db.engine.dialect.name == "postgresql":
        assert order == ["write", "takeover"]
    else:
        assert sorted(order) == ["takeover", "write"]


def test_the_holders_renewal_does_not_wait_for_its_own_write(databases: tuple[Database, Database]) -> None:
    """A long fenced write (an indexer catching up) must not let its own lease expire: the renewal goes through
    while the write's transaction is still open."""
    first_db, second_db = databases
    store = SqlLeaseStore(first_db.sessions)
    lease = asyncio.run(store.acquire("indexer", 9, "a", TTL))
    assert lease is not None
    renewed: list[Lease] = []
    with first_db.unit_of_work() as uow:
        store.fence(uow.session, lease)
        thread = threading.Thread(
            target=lambda: renewed.append(asyncio.run(SqlLeaseStore(second_db.sessions).renew(lease, TTL * 2)))
        )
        thread.start()
        thread.join(5 if first_db.engine.dialect.name == "postgresql" else 15)
        assert [r.token for r in renewed] == [lease.token]  # done before the write commits
        uow.commit()
