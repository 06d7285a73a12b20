"""The indexer: one per chain, it records every confirmed event of our contracts as a chain fact and keeps the loan
ledger (``aggregator.ledger``) in step, in the same transaction as its checkpoint.

Several processes may run it against one PostgreSQL: each chain is indexed by whoever holds its lease
(``store.leases``, kind ``indexer``); the others wait and try again every ``ttl / 3``. The holder renews the lease
every ``ttl / 3`` beside its reading, and every checkpoint transaction checks the lease's fencing token first, so a
holder that lost its lease (it stalled past expiry and another took over) writes nothing. A holder that dies is
replaced within ``ttl`` plus one retry pause. Contracts are those of the chain's deployment record (CreditAggregator,
CollateralManager, the LendingPools, CreditScoringOracle, the Timelock); a pool registered later is read from its
``PoolRegistered`` on — also the rest of the range that registers it (the reader backfills it before delivering the
range) — and, after a restart, from the pools the chain facts show registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from eth_utils.address import to_checksum_address

from aggregator.errors import AggregatorError
from aggregator.ledger import LedgerChain, watched_contracts
from chain.client import ChainClient
from chain.config import ChainConfig
from chain.deployment import DeploymentRecord
from chain.errors import ChainError
from chain.events import ChainEvent, EventReader, WatchedContract
from chain.waiting import wait_at_most
from store.chain import SqlChainStore
from store.db import Database
from store.errors import DatabaseError
from store.leases import Lease, LeaseLost, LeaseStore, SqlLeaseStore
from store.loan_ledger import batch_writer, registered_pools

log = logging.getLogger(__name__)

LEASE_KIND = "indexer"
READER = "indexer"


@dataclass(frozen=True, slots=True)
class IndexerSettings:
    """``ttl``: the lease's time to live; ``interval``: the pause between polls (None: the chain's block time, at
    most 2 s); ``confirmations``: None for the chain's own depth."""

    ttl: timedelta = timedelta(seconds=15)
    interval: float | None = None
    confirmations: int | None = None


def default_holder() -> str:
    """A name for this process's leases: host, pid and a random part (a restarted pid is another holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ChainIndexer:
    def __init__(
        self,
        client: ChainClient,
        record: DeploymentRecord,
        database: Database,
        *,
        leases: LeaseStore | None = None,
        holder: str | None = None,
        settings: IndexerSettings = IndexerSettings(),
    ) -> None:
        self.client, self.record, self.database = client, record, database
        self.leases: LeaseStore = leases or SqlLeaseStore(database.sessions)
        self.holder = holder or default_holder()
        self.settings = settings
        self.chain = LedgerChain.from_record(record)
        self.lease: Lease | None = None
        contracts = watched_contracts(record)
        self.reader = EventReader(
            client,
            SqlChainStore(database.sessions),
            contracts,
            reader=READER,
            start_block=min((record.contracts[c.name].block for c in contracts), default=0),
            confirmations=settings.confirmations,
            fence=self._fence,
            discover=self._registered_pool,
        )
        self._pools_loaded = False
        self._write_batch = batch_writer(self.chain)

    @property
    def chain_id(self) -> int:
        return self.chain.chain_id

    def _fence(self, session: Any) -> None:  # chain.events.Fence: the checkpoint's transaction
        if self.lease is None:
            raise LeaseLost(LEASE_KIND, self.chain_id, "not held")
        self.leases.fence(session, self.lease)

    def _registered_pool(self, event: ChainEvent) -> WatchedContract | None:
        if event.event != "PoolRegistered" or not self.chain.moves_loans(event.address):
            return None
        return _pool(str(event.args["pool"]))

    def _load_registered_pools(self) -> None:
        """The pools the chain facts show registered (a restart after a pool registered since the deployment)."""
        for pool in registered_pools(self.database, self.chain_id, self.chain.aggregator):
            self.reader.watch(_pool(pool))

    async def poll(self) -> int:
        """One read under the held lease: everything confirmed since the checkpoint; the events delivered."""
        if not self._pools_loaded:
            await asyncio.to_thread(self._load_registered_pools)
            self._pools_loaded = True
        return await self.reader.poll(writer=self._write_batch)

    async def run(self, stop: asyncio.Event) -> None:
        """Index while holding the lease, wait for it otherwise, until ``stop`` is set; the lease is released at
        the end so that a successor need not wait for its expiry."""
        retry = self.settings.ttl.total_seconds() / 3
        try:
            while not stop.is_set():
                self.lease = await self.leases.acquire(LEASE_KIND, self.chain_id, self.holder, self.settings.ttl)
                if self.lease is not None:
                    log.info("indexer on chain %s: leader %s (token %s)", self.chain_id, self.holder, self.lease.token)
                    await self._lead(stop, retry)
                await wait_at_most(stop.wait(), retry)
        finally:
            if self.lease is not None:
                with contextlib.suppress(LeaseLost):
                    await self.leases.release(self.lease)
                self.lease = None

    async def _lead(self, stop: asyncio.Event, retry: float) -> None:
        lost = asyncio.Event()
        renewing = asyncio.create_task(self._renew(stop, lost, retry), name=f"indexer-lease-{self.chain_id}")
        try:
            await self._read(stop, lost)
        except LeaseLost as err:
            log.warning("indexer on chain %s: %s", self.chain_id, err)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError, LeaseLost):
                await renewing
        if lost.is_set():
            self.lease = None

    async def _read(self, stop: asyncio.Event, lost: asyncio.Event) -> None:
        pause = self.settings.interval
        if pause is None:
            pause = min(2.0, self.client.config.block_time_seconds)
        while not stop.is_set() and not lost.is_set():
            try:
                await self.poll()
            except LeaseLost:
                lost.set()
                raise
            except (ChainError, AggregatorError, DatabaseError, OSError) as err:
                # an RPC or database outage, or facts the ledger refuses: logged, retried at the next poll
                log.warning("indexer on chain %s: %s", self.chain_id, err)
            await wait_at_most(_first(stop, lost), pause)

    async def _renew(self, stop: asyncio.Event, lost: asyncio.Event, every: float) -> None:
        while not stop.is_set():
            await asyncio.sleep(every)
            assert self.lease is not None
            try:
                self.lease = await self.leases.renew(self.lease, self.settings.ttl)
            except LeaseLost as err:
                log.warning("indexer on chain %s: %s", self.chain_id, err)
                lost.set()
                return


def _pool(address: str) -> WatchedContract:
    pool = to_checksum_address(address)
    return WatchedContract(f"LendingPool@{pool}", pool, "LendingPool")


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def index_to_head(
    config: ChainConfig, record: DeploymentRecord, database: Database, from_block: int, *, reader: str
) -> None:
    """The ledger of one chain from ``from_block`` to the head it has now, by the indexer's own path (facts, ledger
    and checkpoint in one transaction per range) but without a lease: for a one-off catch-up of a database no
    indexer runs on, such as a benchmark's or a test's. ``reader`` names its checkpoint."""
    client = await ChainClient(config).connect()
    try:
        ledger_chain = LedgerChain.from_record(record)
        events = EventReader(
            client,
            SqlChainStore(database.sessions),
            watched_contracts(record),
            reader=reader,
            start_block=from_block,
            confirmations=1,
            initial_range=2_000,
        )

        head = int(await client.rpc("eth_blockNumber"), 16)
        while True:
            await events.poll(writer=batch_writer(ledger_chain))
            checkpoint = await events.store.run(lambda repo: repo.checkpoint(events.chain_id, reader))
            if checkpoint is not None and checkpoint[0] >= head:
                return
    finally:
        await client.close()


async def run_indexers(indexers: list[ChainIndexer], stop: asyncio.Event) -> None:
    """One indexer per chain, concurrently, until ``stop`` is set."""
    async with asyncio.TaskGroup() as group:
        for indexer in indexers:
            group.create_task(indexer.run(stop), name=f"indexer-{indexer.chain_id}")
