"""The indexer: one per chain, it records every confirmed event of our contracts as a chain fact and keeps the loan
ledger (``aggregator.ledger``) in step, in the same transaction as its checkpoint.

Several processes may run it against one PostgreSQL: each chain is indexed by whoever holds its lease
(``store.leases``, kind ``indexer``, held by ``aggregator.servicing.leased``); the others wait and try again every
``ttl / 3``. The holder renews the lease every ``ttl / 3`` beside its reading, and every checkpoint transaction
checks the lease's fencing token first, so a holder that lost its lease (it stalled past expiry and another took
over) writes nothing. A holder that dies is replaced within ``ttl`` plus one retry pause; an outage of the database
or the node is logged and waited out. Contracts are those of the chain's deployment record (CreditAggregator,
CollateralManager, the LendingPools, CreditScoringOracle, the Timelock); a pool registered later is read from its
``PoolRegistered`` on — also the rest of the range that registers it (the reader backfills it before delivering the
range) — and, at the start of each leadership, from the pools the chain facts show registered: a restart, or the
lease back after another process led and recorded pools registered meanwhile (unwatched, their facts would be
missing, and a re-read range would delete them as stale).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from eth_utils.address import to_checksum_address

from aggregator.errors import AggregatorError
from aggregator.ledger import LedgerChain, watched_contracts
from aggregator.servicing.leased import Leader, run_leased
from chain.client import ChainClient
from chain.config import ChainConfig
from chain.deployment import DeploymentRecord
from chain.events import ChainEvent, EventReader, WatchedContract
from store.chain import SqlChainStore
from store.db import Database
from store.leases import Lease, LeaseLost, LeaseStore, SqlLeaseStore
from store.loan_ledger import batch_writer, registered_pools

log = logging.getLogger(__name__)

LEASE_KIND = "indexer"
READER = "indexer"
CATCH_UP_PAUSE = 0.25  # seconds between two polls of index_to_head that moved nothing


class CatchUpStalled(AggregatorError):
    """``index_to_head`` read no further for its ``stalled_after`` seconds: the node serves no block up to the head
    it gave (a node, or a balancer's backend, behind the one that answered the head), or it stands below the
    checkpoint."""


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
        self._pools_loaded_under: int | None = None  # the lease token the registered pools were read under
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
        """The pools the chain facts show registered (registered since the deployment, read by this process before
        a restart or by another while it led)."""
        for pool in registered_pools(self.database, self.chain_id, self.chain.aggregator):
            self.reader.watch(_pool(pool))

    async def poll(self) -> int:
        """One read under the held lease: everything confirmed since the checkpoint; the events delivered. The
        first of each leadership (a new lease token: every takeover moves it) reads the registered pools first."""
        leadership = -1 if self.lease is None else self.lease.token
        if self._pools_loaded_under != leadership:
            await asyncio.to_thread(self._load_registered_pools)
            self._pools_loaded_under = leadership
        return await self.reader.poll(writer=self._write_batch)

    async def run(self, stop: asyncio.Event) -> None:
        """Index while holding the lease, wait for it otherwise, until ``stop`` is set; the lease is released at
        the end so that a successor need not wait for its expiry. An outage of the database or the node ends no
        indexer (``aggregator.servicing.leased``)."""
        pause = self.settings.interval
        if pause is None:
            pause = min(2.0, self.client.config.block_time_seconds)
        try:
            await run_leased(
                LEASE_KIND,
                self.chain_id,
                self.leases,
                self.holder,
                self.settings.ttl,
                pause,
                self._round,
                stop,
                label=f"indexer on chain {self.chain_id}",
                stepped_down=self._step_down,
            )
        finally:
            self.lease = None

    async def _round(self, leader: Leader) -> None:
        self.lease = leader.lease  # its token fences every checkpoint (a renewal keeps the token)
        await self.poll()

    async def _step_down(self) -> None:
        self.lease = None
        self._pools_loaded_under = None  # another process may register pools while it leads


def _pool(address: str) -> WatchedContract:
    pool = to_checksum_address(address)
    return WatchedContract(f"LendingPool@{pool}", pool, "LendingPool")


async def index_to_head(
    config: ChainConfig,
    record: DeploymentRecord,
    database: Database,
    from_block: int,
    *,
    reader: str,
    stalled_after: float = 30.0,
) -> None:
    """The ledger of one chain from ``from_block`` to the head it has now, by the indexer's own path (facts, ledger
    and checkpoint in one transaction per range) but without a lease: for a one-off catch-up of a database no
    indexer runs on, such as a benchmark's or a test's. ``reader`` names its checkpoint. A poll that moves the
    checkpoint no further is followed by a pause, and ``stalled_after`` seconds without the checkpoint moving raise
    ``CatchUpStalled`` (a node behind the head it gave was polled at once, for ever)."""
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
        reached, since = from_block - 1, time.monotonic()
        while reached < head:
            await events.poll(writer=batch_writer(ledger_chain))
            checkpoint = await events.store.run(lambda repo: repo.checkpoint(events.chain_id, reader))
            if checkpoint is not None and checkpoint[0] > reached:
                reached, since = checkpoint[0], time.monotonic()
                continue
            if time.monotonic() - since >= stalled_after:
                raise CatchUpStalled(
                    f"{config.name}: indexing {reader!r} to block {head} read nothing past block {reached} for "
                    f"{stalled_after} s: the node serves no block up to the head it gave (a node behind another?)"
                )
            await asyncio.sleep(CATCH_UP_PAUSE)
    finally:
        await client.close()
