"""``--since-last`` reads where each chain's newest finished run ended (``SqlReconciliationRepository.last_ranges``).
A run row whose ``chains`` were altered into another shape (valid JSON: PostgreSQL's JSON column takes any) crashed
every later ``creditmesh reconcile --since-last`` with a ``TypeError``; it is passed by, logged, and the run before it
says where to go on."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from store.compliance import ReconciliationRunRow, SqlReconciliationRepository
from store.db import Database

pytestmark = pytest.mark.integration


def _run(run_id: str, minutes: int, chains: list[dict[str, object]]) -> ReconciliationRunRow:
    at = datetime(2026, 11, 29, 12, tzinfo=UTC) + timedelta(minutes=minutes)
    return ReconciliationRunRow(
        id=run_id, started_by="test", created_at=at, finished_at=at, status="done", chains=chains, counts={}
    )


def test_a_run_whose_chains_do_not_read_is_passed_by(fresh: Database, caplog: pytest.LogCaptureFixture) -> None:
    fresh.migrate()
    with fresh.unit_of_work() as uow:
        uow.session.add(_run("run-1", 0, [{"chain": "ethereum-local", "toBlock": 40}]))
        uow.session.add(_run("run-2", 1, [{"chain": "polygon-local", "toBlock": 70}]))
        uow.session.add(_run("run-3", 2, [{"chain": "ethereum-local", "toBlock": 90}]))
        uow.commit()
    with fresh.unit_of_work() as uow:
        uow.session.execute(text("""UPDATE reconciliation_runs SET chains = '{"0": 1}' WHERE id = 'run-3'"""))
        uow.commit()
    with fresh.unit_of_work() as uow, caplog.at_level(logging.ERROR, logger="store.compliance"):
        ranges = SqlReconciliationRepository(uow.session).last_ranges()
    assert ranges == {"ethereum-local": 40, "polygon-local": 70}
    assert "reconciliation run run-3: its chains" in caplog.text
