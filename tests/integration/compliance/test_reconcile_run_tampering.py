"""A stored reconciliation run checked against its digest and its audit entry by ``creditmesh audit verify``'s
check (``api.audit_jobs.verify_log``), on a real devnet and PostgreSQL: a run as stored verifies (its chain
summaries and discrepancies, read back from the database, hash to its digest); a discrepancy deleted or reworded,
or the run's digest rewritten to match, is reported by run — it went unnoticed, since nothing compared a stored run
with its digest."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import delete, update

from api.audit_jobs import verify_log
from compliance.reconcile_runs import stored_digest
from store.aggregator import LoanRow
from store.compliance import DiscrepancyRow, ReconciliationRunRow, SqlAuditLog
from store.db import Database
from store.reconciliation_runs import SqlReconciliationRuns
from tests.support.devnet import DeployedChain
from tests.support.reconcile import LoanMaker, index, reconciled

pytestmark = pytest.mark.integration


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema(f"reconcile_tamper_{os.urandom(3).hex()}"))
    db.migrate()
    yield db
    db.dispose()


async def test_a_stored_run_altered_after_it_finished_is_reported(
    database: Database, ethereum_local: DeployedChain
) -> None:
    chain = ethereum_local
    maker = LoanMaker(chain, database)
    start = maker.head() + 1
    loans = [maker.open(n) for n in range(2)]
    await index(chain, database, start)
    with database.unit_of_work() as uow:  # two discrepancies to keep, alter and delete
        uow.session.execute(update(LoanRow).where(LoanRow.id == loans[0].loan_id).values(status="defaulted"))
        uow.session.execute(update(LoanRow).where(LoanRow.id == loans[1].loan_id).values(principal=1))
        uow.commit()
    await reconciled(chain, database, start)
    with database.unit_of_work() as uow:
        SqlAuditLog(uow.session).seal()
        uow.commit()
        (run,) = uow.session.query(ReconciliationRunRow).all()
        run_id, digest = run.id, run.digest
    report = await verify_log(database, [])
    assert report.run_problems == ()
    assert report.runs_checked == 1
    assert report.ok

    with database.unit_of_work() as uow:  # the principal's discrepancy taken out of the stored run
        uow.session.execute(
            delete(DiscrepancyRow).where(DiscrepancyRow.run_id == run_id, DiscrepancyRow.detail.startswith("principal"))
        )
        uow.commit()
    report = await verify_log(database, [])
    assert not report.ok
    assert report.run_problems == (
        f"reconciliation {run_id}: its stored chain summaries and discrepancies do not hash to its digest (altered)",
    )

    found = SqlReconciliationRuns(database).report(run_id)
    assert found is not None
    forged = stored_digest(*found)  # the digest rewritten to the altered result's: the audit log still has the old
    with database.unit_of_work() as uow:
        uow.session.execute(update(ReconciliationRunRow).where(ReconciliationRunRow.id == run_id).values(digest=forged))
        uow.commit()
    report = await verify_log(database, [])
    assert report.run_problems == (
        f"reconciliation {run_id}: its digest {forged} is not the audit log's {digest} (rewritten)",
    )
