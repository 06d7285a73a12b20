"""A stored reconciliation run checked against its digest and its audit entry by ``creditmesh audit verify``'s
check (``api.audit_jobs.verify_log``), on a real devnet and PostgreSQL: a run as stored verifies (its chain
summaries and discrepancies, read back from the database, hash to its digest); a discrepancy deleted or reworded,
or the run's digest rewritten to match, is reported by run — it went unnoticed, since nothing compared a stored run
with its digest. A run the audit log records is checked even when it is stored as failed or deleted: either hid an
altered result from the check, which looked only at runs stored as done."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select, update

from api.audit_jobs import verify_log
from compliance.audit import AuditKind
from compliance.reconcile_runs import stored_digest
from store.aggregator import LoanRow
from store.compliance import (
    AuditEntryRow,
    DiscrepancyRow,
    ReconciliationRunRow,
    SqlAuditLog,
    SqlReconciliationRepository,
)
from store.db import Database
from store.reconciliation_runs import SqlReconciliationRuns
from tests.support.devnet import DeployedChain
from tests.support.reconcile import LoanMaker, index, reconciled

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


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


async def _audited_run_with_a_discrepancy(database: Database, chain: DeployedChain) -> str:
    """One sealed run of two loans, one recorded defaulted while active on-chain: its id."""
    maker = LoanMaker(chain, database)
    start = maker.head() + 1
    loans = [maker.open(n) for n in range(2)]
    await index(chain, database, start)
    with database.unit_of_work() as uow:
        uow.session.execute(update(LoanRow).where(LoanRow.id == loans[0].loan_id).values(status="defaulted"))
        uow.commit()
    result = await reconciled(chain, database, start)
    assert [item.category.value for item in result.items] == ["status-mismatch"]
    with database.unit_of_work() as uow:
        SqlAuditLog(uow.session).seal()
        uow.commit()
        (run,) = uow.session.query(ReconciliationRunRow).all()
        return run.id


async def test_an_altered_run_marked_failed_or_deleted_is_still_reported(
    database: Database, ethereum_local: DeployedChain
) -> None:
    run_id = await _audited_run_with_a_discrepancy(database, ethereum_local)
    assert (await verify_log(database, [])).ok

    with database.unit_of_work() as uow:  # its discrepancy taken out, and the run marked failed to hide it
        uow.session.execute(delete(DiscrepancyRow).where(DiscrepancyRow.run_id == run_id))
        uow.session.execute(
            update(ReconciliationRunRow).where(ReconciliationRunRow.id == run_id).values(status="failed")
        )
        uow.commit()
    report = await verify_log(database, [])
    assert not report.ok
    assert report.runs_checked == 1
    assert report.run_problems == (
        f"reconciliation {run_id}: the audit log records it finished, but it is stored as failed (altered)",
        f"reconciliation {run_id}: its stored chain summaries and discrepancies do not hash to its digest (altered)",
    )

    with database.unit_of_work() as uow:  # the run deleted altogether (its discrepancies go with it)
        uow.session.execute(delete(ReconciliationRunRow).where(ReconciliationRunRow.id == run_id))
        uow.commit()
    report = await verify_log(database, [])
    assert not report.ok
    assert report.runs_checked == 1
    assert report.run_problems == (
        f"reconciliation {run_id}: the audit log records it finished, but no such run is stored (deleted)",
    )


async def test_a_failed_run_the_log_does_not_record_is_not_reported(
    database: Database, ethereum_local: DeployedChain
) -> None:
    await _audited_run_with_a_discrepancy(database, ethereum_local)
    with database.unit_of_work() as uow:  # a run that failed on its own: no result, no audit entry
        repository = SqlReconciliationRepository(uow.session)
        repository.start("failed-run", "test", datetime.now(UTC))
        repository.fail("failed-run", "ChainError: the node went away", datetime.now(UTC))
        uow.commit()
    report = await verify_log(database, [])
    assert report.ok, report.run_problems
    assert report.runs_checked == 1


async def test_a_second_audit_entry_written_to_match_an_altered_run_does_not_stand_in_for_the_first(
    database: Database, ethereum_local: DeployedChain
) -> None:
    run_id = await _audited_run_with_a_discrepancy(database, ethereum_local)
    with database.unit_of_work() as uow:  # the discrepancy taken out, counts and summary made to agree with that
        uow.session.execute(delete(DiscrepancyRow).where(DiscrepancyRow.run_id == run_id))
        run = uow.session.get(ReconciliationRunRow, run_id)
        assert run is not None
        original = run.digest
        run.counts = dict(run.counts) | {"status-mismatch": 0}
        chains = [dict(chain) for chain in run.chains]
        chains[0]["counts"] = dict(chains[0]["counts"]) | {"status-mismatch": 0}
        run.chains = chains
        uow.commit()
    found = SqlReconciliationRuns(database).report(run_id)
    assert found is not None
    forged = stored_digest(*found)
    with database.unit_of_work() as uow:  # the digest rewritten, and a second entry appended and sealed to match it
        run = uow.session.get(ReconciliationRunRow, run_id)
        assert run is not None
        run.digest = forged
        (entry,) = uow.session.scalars(select(AuditEntryRow).where(AuditEntryRow.subject == run_id))
        log = SqlAuditLog(uow.session)
        log.append(AuditKind.RECONCILIATION, run_id, dict(entry.data) | {"digest": forged, "counts": run.counts}, NOW)
        uow.session.flush()
        log.seal()
        uow.commit()
    report = await verify_log(database, [])
    assert report.problems == ()  # the log itself holds: the entry was appended, not rewritten
    assert not report.ok
    assert report.run_problems == (
        f"reconciliation {run_id}: the audit log records it 2 times (a later entry written outside a run); checked "
        "against the first",
        f"reconciliation {run_id}: its digest {forged} is not the audit log's {original} (rewritten)",
        f"reconciliation {run_id}: its counts per category are not the audit log's (altered)",
    )


async def test_a_run_cancelled_after_it_finished_stays_done_and_verifies(
    database: Database, ethereum_local: DeployedChain
) -> None:
    """A run's task cancelled (a process stopping) just after its results and audit entry were committed marks it
    failed: that must not turn a finished run into one verify calls altered."""
    run_id = await _audited_run_with_a_discrepancy(database, ethereum_local)
    with database.unit_of_work() as uow:
        SqlReconciliationRepository(uow.session).fail(run_id, "CancelledError", datetime.now(UTC))
        uow.commit()
    with database.unit_of_work() as uow:
        run = uow.session.get(ReconciliationRunRow, run_id)
        assert run is not None
        assert (run.status, run.error) == ("done", None)
    report = await verify_log(database, [])
    assert report.ok, report.run_problems
