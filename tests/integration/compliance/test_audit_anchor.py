"""The audit log's head anchored on real devnets (the AuditAnchor deployed by the devnet profile): anchoring through
the audit anchor key's transaction manager, only that key may anchor, and a log rewritten with recomputed hashes is
caught by the anchors read back from two chains; a chain that refuses the anchor does not keep it off the others."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from api.audit_jobs import AnchorChain, AnchoringFailed, anchor, run_anchoring, seal, verify_log
from chain.client import ChainClient
from chain.signers import Role, Signer, devnet_signer
from chain.transactions import TransactionManager
from compliance.audit import AuditKind, PendingEntry
from compliance.audit import seal as chain_entries
from compliance.audit_anchor import AnchorContract, AnchorError, anchor_head, latest_anchor
from store.chain import SqlChainStore
from store.compliance import AuditEntryRow, AuditHeadRow, SqlAuditLog
from store.db import Database
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema(f"anchor_{os.urandom(3).hex()}"))
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture
def two_chains(devnet_chains: dict[str, DeployedChain]) -> Iterator[list[DeployedChain]]:
    chains = [devnet_chains["ethereum-local"], devnet_chains["polygon-local"]]
    with chains[0].snapshot(), chains[1].snapshot():
        yield chains


@asynccontextmanager
async def _anchor_chains(
    database: Database, chains: list[DeployedChain], signer: Signer
) -> AsyncIterator[list[AnchorChain]]:
    opened = []
    for chain in chains:
        client = await ChainClient(chain.config).connect()
        manager = await TransactionManager(
            client, signer, SqlChainStore(database.sessions), revert_artifacts=("AuditAnchor",)
        ).start()
        opened.append(AnchorChain(client, AnchorContract.from_record(chain.record), manager))
    try:
        yield opened
    finally:
        for item in opened:
            assert item.transactions is not None
            await item.transactions.close()
            await item.client.close()


def _append(database: Database, count: int) -> None:
    with database.unit_of_work() as uow:
        for n in range(count):
            SqlAuditLog(uow.session).append(AuditKind.KEY_ISSUED, f"s-{n}", {"role": "auditor", "n": n}, NOW)
        uow.commit()


async def test_anchor_then_a_rewritten_log_is_caught(database: Database, two_chains: list[DeployedChain]) -> None:
    _append(database, 4)
    async with _anchor_chains(database, two_chains, devnet_signer(Role.AUDIT_ANCHOR)) as chains:
        done = await anchor(database, chains)
        assert set(done) == {"ethereum-local", "polygon-local"}
        assert all(done.values())
        assert set((await anchor(database, chains)).values()) == {None}  # the head is anchored already
        _append(database, 2)
        await anchor(database, chains)
        report = await verify_log(database, chains)
        assert report.ok, report.problems
        assert report.anchors_checked == 4
        assert report.entries == 6

        # Rewrite entry 2 and recompute every hash after it: the sealer's head no longer names the last hash; with
        # the head rewritten too, the log alone verifies, and the anchors do not.
        with database.unit_of_work() as uow:
            rows = list(uow.session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq)))
            rows[1].data = {"role": "admin", "n": 1}
            pending = [PendingEntry(r.id, r.kind, r.subject, r.data, r.recorded_at) for r in rows]
            for (_, entry), row in zip(chain_entries(None, pending), rows, strict=True):
                row.prev_hash, row.entry_hash = entry.prev_hash, entry.entry_hash
            uow.commit()
        (head_problem,) = (await verify_log(database, [])).problems
        assert "the sealer's head" in head_problem.reason
        with database.unit_of_work() as uow:
            uow.session.execute(update(AuditHeadRow).values(entry_hash=rows[-1].entry_hash))
            uow.commit()
        assert (await verify_log(database, [])).ok
        report = await verify_log(database, chains)
        assert not report.ok
        assert report.first_bad is not None
        assert report.first_bad.seq == 4
        assert "rewritten" in report.first_bad.reason
        assert {p.seq for p in report.problems} == {4, 6}


async def test_only_the_anchor_key_may_anchor(database: Database, two_chains: list[DeployedChain]) -> None:
    _append(database, 1)
    _, head = seal(database)
    assert head is not None
    async with _anchor_chains(database, two_chains[:1], devnet_signer(Role.OPERATOR)) as chains:
        chain = chains[0]
        assert chain.transactions is not None
        with pytest.raises(AnchorError, match="AccessControlUnauthorizedAccount"):
            await anchor_head(chain.transactions, chain.contract, head, within=30)


async def test_a_chain_that_refuses_the_anchor_does_not_keep_it_off_the_others(
    database: Database, two_chains: list[DeployedChain]
) -> None:
    """Polygon first, where the key lacks ANCHOR_ROLE (a rotated role, a key out of gas): the worker's round still
    anchors the head on the chain after it, and names the one that failed. The first failure used to end the round,
    so no chain after it was anchored at any interval."""
    _append(database, 3)
    ethereum, polygon = two_chains
    async with (
        _anchor_chains(database, [polygon], devnet_signer(Role.OPERATOR)) as refused,
        _anchor_chains(database, [ethereum], devnet_signer(Role.AUDIT_ANCHOR)) as anchorable,
    ):
        stop = asyncio.Event()
        worker = asyncio.create_task(
            run_anchoring(database, [*refused, *anchorable], stop, interval=3_600, seal_interval=0.1)
        )
        try:
            deadline = time.monotonic() + 60
            while await latest_anchor(anchorable[0].client, anchorable[0].contract) < 3:
                assert time.monotonic() < deadline, "the head never anchored on the chain after the failing one"
                assert not worker.done()
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            await asyncio.wait_for(worker, 30)
        assert await latest_anchor(refused[0].client, refused[0].contract) == 0

        with pytest.raises(AnchoringFailed) as raised:  # on demand: every chain tried, each failure named
            await anchor(database, [*refused, *anchorable])
    assert raised.value.anchored == {"ethereum-local": None}  # anchored by the worker already
    assert list(raised.value.failed) == ["polygon-local"]
    assert "AccessControlUnauthorizedAccount" in raised.value.failed["polygon-local"]
