"""Two ``creditmesh index`` processes on one PostgreSQL index one devnet: one leads under the chain's lease, every
event is recorded once; the leader is killed (SIGKILL) and the other takes over within the lease's bound."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from aggregator.indexer import READER
from api.bootstrap import write_chains_file
from store.chain import SqlChainStore
from store.db import Database
from store.leases import LeaseRow
from store.ledger import ChainFactRow
from tests.contracts.harness import BORROWERS, USDC, WETH, Harness
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.integration

LEASE_SECONDS = 2.0
BORROWER = BORROWERS[2]


@pytest.fixture
def indexers(
    ethereum_local: DeployedChain, postgres_schema: Callable[[str], str], tmp_path: Path
) -> Iterator[tuple[Database, list[subprocess.Popen[bytes]]]]:
    url = postgres_schema("indexer_processes")
    database = Database(url)
    database.migrate()
    _checkpoint_at_head(database, ethereum_local)
    write_chains_file(tmp_path / "chains.json", [ethereum_local.config])
    ethereum_local.record.save(tmp_path / "deployments" / f"{ethereum_local.name}.json")
    env = os.environ | {
        "CREDITMESH_DATA_DIR": str(tmp_path),
        "CREDITMESH_CHAINS_FILE": str(tmp_path / "chains.json"),
        "CREDITMESH_DATABASE_URL": url,
    }
    command = [sys.executable, "-m", "api.cli", "index", "--lease-seconds", str(LEASE_SECONDS)]
    logs = [(tmp_path / f"index-{i}.log").open("wb") for i in range(2)]
    processes = [subprocess.Popen(command, env=env, stderr=log) for log in logs]
    try:
        yield database, processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
        for log in logs:
            log.close()
        database.dispose()


def _checkpoint_at_head(database: Database, chain: DeployedChain) -> None:
    """Index from the head on: the session's devnet carries every earlier test's blocks, which this test need not
    read again (the reader's catching up is the ledger tests' and the API's)."""
    head = chain.w3.eth.get_block("latest")
    asyncio.run(
        SqlChainStore(database.sessions).run(
            lambda repo: repo.set_checkpoint(chain.chain_id, READER, int(head["number"]), head["hash"].to_0x_hex())
        )
    )


def _wait(condition: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _lease(database: Database) -> LeaseRow | None:
    with database.unit_of_work() as uow:
        return uow.session.scalar(select(LeaseRow).where(LeaseRow.kind == "indexer"))


def _facts_of(database: Database, tx_hash: str) -> int:
    with database.unit_of_work() as uow:
        return int(uow.session.scalar(select(func.count()).where(ChainFactRow.tx_hash == tx_hash)) or 0)


def _duplicates(database: Database) -> int:
    with database.unit_of_work() as uow:
        grouped = (
            select(ChainFactRow.tx_hash, ChainFactRow.log_index)
            .group_by(ChainFactRow.tx_hash, ChainFactRow.log_index)
            .having(func.count() > 1)
        )
        return len(uow.session.execute(grouped).all())


def test_one_leader_records_each_event_once_and_a_follower_takes_over(
    ethereum_local: DeployedChain, indexers: tuple[Database, list[subprocess.Popen[bytes]]]
) -> None:
    database, processes = indexers
    h = Harness(ethereum_local)
    h.fund(BORROWER.address, usdc=1_000 * USDC, weth=3 * WETH)
    h.approve_all(BORROWER.address)
    _, opened = h.open_loan(BORROWER)
    first_tx = opened["transactionHash"].to_0x_hex()
    h.advance(1)  # one more block: the loan's block is confirmed
    _wait(lambda: _facts_of(database, first_tx) > 0, timeout=180)  # two processes start up: slow on a busy machine
    lease = _lease(database)
    assert lease is not None
    assert lease.holder is not None
    by_pid = {process.pid: process for process in processes}
    leader = by_pid[int(lease.holder.split(":")[1])]
    (follower,) = [p for p in processes if p is not leader]
    assert _duplicates(database) == 0

    leader.send_signal(signal.SIGKILL)  # no release: the follower waits for the lease to expire
    leader.wait(10)
    killed_at = time.monotonic()
    _, second = h.open_loan(BORROWER)
    second_tx = second["transactionHash"].to_0x_hex()
    h.advance(1)
    _wait(lambda: _facts_of(database, second_tx) > 0)
    took = time.monotonic() - killed_at
    lease = _lease(database)
    assert lease is not None
    assert lease.holder is not None
    assert int(lease.holder.split(":")[1]) == follower.pid
    assert lease.token >= 2  # a takeover moved the fencing token
    assert took < 30  # the bound is the lease (2 s) + one retry pause, with wide margins on a shared machine
    assert _duplicates(database) == 0
    assert follower.poll() is None
