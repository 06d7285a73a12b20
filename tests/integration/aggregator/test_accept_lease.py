"""The accept's lease on real PostgreSQL, with two drivers (each on a thread and event loop of its own, as two
processes would be): a live driver held in a slow chain step far longer than the lease keeps it, even when its
process's default executor is full (the load at which a queued renewal once came too late and another process took a
live accept over); once it dies the other takes the accept over within about a lease; a driver whose accept was
taken over stops before its next step; and an unsent intent the resumer barred cannot be sent late (anvil)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from aggregator._accept_chain import bar_unsent
from aggregator._accept_lease import AcceptRecords, LeaseLost
from aggregator.accept_saga import AcceptStep, InMemoryScreeningLog
from aggregator.accepting import AcceptanceService
from aggregator.assets import AssetRegistry
from aggregator.exposure import ExposureLimits
from aggregator.loans import InMemoryLoanStore
from aggregator.platform import ChainRuntime
from chain.client import ChainClient
from chain.errors import IntentConflict
from chain.transactions import Call
from compliance import ComplianceService
from store.accept_rows import AcceptRow
from store.accepts import SqlAcceptStore
from store.aggregator import CreditRequestRow, QuoteRow
from store.api import BorrowerRow
from store.db import Database
from tests.integration.chain.support import chain_store, fresh_anvil, holder, manager

pytestmark = pytest.mark.integration

LEASE = timedelta(seconds=1)
CHAIN = "ethereum-local"


@pytest.fixture(scope="module")
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema("accept_lease"))
    db.migrate()
    yield db
    db.dispose()


class HeldChain:
    """A chain runtime's part the resumed accept touches: the ``openLoan`` intent exists, and its confirmation is held
    (a slow chain) until the driver is stopped."""

    def __init__(self) -> None:
        self.transactions = SimpleNamespace(
            store=SimpleNamespace(get_intent=self._intent), wait=self._wait, bar=self._bar
        )

    async def _intent(self, key: str) -> object:
        return SimpleNamespace(key=key)

    async def _bar(self, key: str, to: str | None, reason: str) -> bool:
        return False  # the intent exists (it was sent): nothing to bar

    def aggregator(self) -> Any:
        return SimpleNamespace(address="0x" + "ab" * 20)

    async def _wait(self, key: str, within: float | None = None) -> Any:
        await asyncio.Event().wait()


def _driver(database: Database, lease: timedelta = LEASE) -> AcceptanceService:
    return AcceptanceService(
        SqlAcceptStore(database),
        cast(dict[str, ChainRuntime], {CHAIN: HeldChain()}),
        {},
        cast(ComplianceService, None),
        AssetRegistry([]),
        loans=InMemoryLoanStore(),
        screenings=InMemoryScreeningLog(),
        limits=ExposureLimits(),
        lease=lease,
    )


def _submitted_accept(database: Database) -> str:
    """A pool quote whose accept a process that died left at 'submitted' (its lease has run out)."""
    now = datetime.now(UTC)
    borrower_id, request_id, quote_id = (str(uuid.uuid4()) for _ in range(3))
    with database.unit_of_work() as uow:
        session = uow.session
        session.add(
            BorrowerRow(
                id=borrower_id, wallet_address="0x" + uuid.uuid4().hex[:40], jurisdiction="US-NY", created_at=now
            )
        )
        session.flush()
        session.add(
            CreditRequestRow(
                id=request_id,
                borrower_id=borrower_id,
                asset="USDC",
                amount="100",
                term_days=30,
                purpose="test",
                collateral_asset="WETH",
                collateral_amount="0.1",
                preferred_chains=[CHAIN],
                status="accepting",
                risk={},
                created_at=now,
            )
        )
        session.flush()
        session.add(
            QuoteRow(
                id=quote_id,
                request_id=request_id,
                borrower_id=borrower_id,
                provider_id="pool:usdc",
                kind="pool",
                chain_name=CHAIN,
                chain_id=31337,
                contract="0x" + "11" * 20,
                rank=1,
                offer={"principal": "100000000", "nonce": "1"},
                offer_digest="0x" + uuid.uuid4().hex * 2,
                offer_signature="0x",
                attestation={},
                attestation_signature="0x",
                disclosure={"asset": "USDC"},
                status="accepting",
                expires_at=now + timedelta(hours=1),
                created_at=now,
            )
        )
        session.flush()
        session.add(
            AcceptRow(
                quote_id=quote_id,
                request_id=request_id,
                borrower_id=borrower_id,
                kind="pool",
                chain_name=CHAIN,
                attempt=1,
                step=AcceptStep.SUBMITTED.value,
                owner="dead-process",
                lease_until=now - timedelta(seconds=1),
                updated_at=now - timedelta(seconds=5),
            )
        )
        uow.commit()
    return quote_id


def _owner(database: Database, quote_id: str) -> str:
    with database.unit_of_work() as uow:
        row = uow.session.get(AcceptRow, quote_id, populate_existing=True)
        assert row is not None
        return row.owner


def _until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _one_pass(driver: AcceptanceService) -> int:
    """One recovery pass of ``driver`` on a loop of its own; an accept it claims is driven (held by the chain) for
    half a second, then dropped as by a process that dies."""

    async def drive() -> int:
        claimed = 0
        task = asyncio.create_task(driver.resume_unfinished())
        done, _ = await asyncio.wait({task}, timeout=0.5)
        claimed = task.result() if done else 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return claimed

    return asyncio.run(drive())


def test_a_live_accept_held_past_its_lease_is_kept_and_taken_over_only_once_its_process_dies(
    database: Database,
) -> None:
    # a 2 s lease held 3 s: past its lease, and a heartbeat (each third of the lease) may come 1.3 s late on a
    # loaded machine before another driver could take the accept (1 s leases failed so at load ~5)
    lease, held = timedelta(seconds=2), 3.0
    quote_id = _submitted_accept(database)
    first, second = _driver(database, lease), _driver(database, lease)
    killed = threading.Event()

    async def first_process() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=2))
        task = asyncio.create_task(first.resume_unfinished())  # claims the accept, then waits on the held chain
        while _owner(database, quote_id) != first.owner:  # noqa: ASYNC110 (a database row, not an event)
            await asyncio.sleep(0.05)
        # a loaded process: its default executor busy far longer than the lease
        busy = [loop.run_in_executor(None, time.sleep, held) for _ in range(2)]
        with ThreadPoolExecutor(max_workers=1) as watching:  # not the default executor: it is busy
            await loop.run_in_executor(watching, killed.wait)
        task.cancel()  # the process dies: its heartbeat with it, nothing released
        await asyncio.gather(task, *busy, return_exceptions=True)

    process = threading.Thread(target=asyncio.run, args=(first_process(),))
    process.start()
    try:
        assert _until(lambda: _owner(database, quote_id) == first.owner, 5)
        start = time.monotonic()
        passes = []
        while time.monotonic() - start < held:  # the chain step held past the lease
            passes.append(_one_pass(second))
            time.sleep(0.2)
        assert passes
        assert set(passes) == {0}, "another driver took a live accept over"
        assert _owner(database, quote_id) == first.owner
    finally:
        killed.set()
        process.join(10)

    assert _until(lambda: _one_pass(second) == 1, 4 * lease.total_seconds()), "the dead driver's accept was not taken"
    assert _owner(database, quote_id) == second.owner


async def test_a_driver_whose_accept_was_taken_over_stops_before_its_next_step(database: Database) -> None:
    quote_id = _submitted_accept(database)
    store = SqlAcceptStore(database)
    mine = AcceptRecords(store, "process-a", LEASE, lambda: datetime.now(UTC))
    with store.unit_of_work() as uow:
        record = uow.accepts.claim(
            uow.accepts.record(quote_id),  # type: ignore[arg-type]
            "process-a",
            mine.lease_until(),
            datetime.now(UTC),
        )
        uow.commit()
    assert record is not None
    async with mine.renewing(record):
        with database.unit_of_work() as uow:  # another process takes it (as after a stall longer than the lease)
            uow.session.query(AcceptRow).filter_by(quote_id=quote_id).update({"owner": "process-b"})
            uow.commit()
        await asyncio.sleep(LEASE.total_seconds())  # a heartbeat finds it gone
        with pytest.raises(LeaseLost):
            mine.ensure_held(quote_id)
        with pytest.raises(LeaseLost):
            await mine.step(record, AcceptStep.MINED)
    assert _owner(database, quote_id) == "process-b"
    with store.unit_of_work() as uow:
        stored = uow.accepts.record(quote_id)
    assert stored is not None
    assert stored.step is AcceptStep.SUBMITTED


async def test_an_unsent_intent_barred_by_the_resumer_cannot_be_sent_late(tmp_path: Path) -> None:
    """A resumer that finds an accept at 'submitted' with no intent bars the key before cancelling: the process
    that lost the accept, still alive, then cannot send it (its submit of the key is refused, nothing reaches the
    node); a key already submitted is not barred (its transaction may be mined)."""
    store, engine = chain_store(f"sqlite:///{tmp_path / 'chain.db'}")
    try:
        with fresh_anvil() as devnet:
            client = ChainClient(devnet.config(), timeout=5.0)
            async with manager(client, store) as relay:
                chain = cast(
                    ChainRuntime,
                    SimpleNamespace(transactions=relay, aggregator=lambda: SimpleNamespace(address=holder(99))),
                )
                sent_before = await client.rpc("eth_getTransactionCount", relay.account.address, "pending")
                assert await bar_unsent(chain, "open-loan:q1:1")
                with pytest.raises(IntentConflict):
                    await relay.submit("open-loan:q1:1", Call.transfer(holder(500), 1))
                assert await client.rpc("eth_getTransactionCount", relay.account.address, "pending") == sent_before

                await relay.submit_and_wait("open-loan:q2:1", Call.transfer(holder(501), 1), within=30)
                assert not await bar_unsent(chain, "open-loan:q2:1")
            await client.close()
    finally:
        engine.dispose()
