"""The audit log on a real PostgreSQL: what the platform does appends entries in its own transaction (a decision, a
risk decision, a key issued, a governance record, an erasure); sealing chains them; ``creditmesh audit verify``
names the first changed, deleted or inserted entry."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select, text, update

from api.auth import Role, issue_key
from api.cli import main
from compliance.audit import AuditKind, verify
from compliance.decisions import DecisionKind, decide
from store.compliance import AuditEntryRow, ComplianceDecisionRow, SqlAuditLog, SqlDecisionRepository
from store.db import Database
from store.governance import ProposalRecord, SqlProposalRepository

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[tuple[Database, str]]:
    url = postgres_schema(f"audit_{os.urandom(3).hex()}")
    db = Database(url)
    db.migrate()
    yield db, url
    db.dispose()


def _fill(db: Database) -> None:
    with db.unit_of_work() as uow:
        record = decide(DecisionKind.CREDIT_REQUEST, "b-1", {"amount": "10"}, [], {"rules": "v1"}, NOW)
        SqlDecisionRepository(uow.session).add(record)
        uow.commit()
    with db.unit_of_work() as uow:  # rolled back: no entry either
        SqlDecisionRepository(uow.session).add(decide(DecisionKind.OFFER, "b-2", {}, [], {}, NOW))
    issue_key(db, Role.AUDITOR, None, "auditor one")
    with db.unit_of_work() as uow:
        SqlProposalRepository(uow.session).save(
            ProposalRecord(
                31337, "ethereum-local", "0x" + "aa" * 20, "0x" + "01" * 32, [], "0x", "0x", 2, "0xp", "pending"
            )
        )
        uow.commit()


def _verify_cli(url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    monkeypatch.setenv("CREDITMESH_DATABASE_URL", url)
    try:
        main(["audit", "verify", "--offline"])
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capsys.readouterr().out


def test_entries_written_with_what_they_record_and_sealed_in_order(database: tuple[Database, str]) -> None:
    db, _ = database
    _fill(db)
    with db.unit_of_work() as uow:
        log = SqlAuditLog(uow.session)
        assert log.pending() == 3
        assert log.seal() == 3
        uow.commit()
    with db.unit_of_work() as uow:
        entries = SqlAuditLog(uow.session).entries()
    assert [e.kind for e in entries] == [
        AuditKind.COMPLIANCE_DECISION.value,
        AuditKind.KEY_ISSUED.value,
        AuditKind.GOVERNANCE.value,
    ]
    stored = entries[0].data["recordHash"]
    with db.unit_of_work() as uow:
        assert SqlDecisionRepository(uow.session).stored_hash(str(entries[0].data["decisionId"])) == stored
    assert verify(entries).ok


def test_plain_inserts_write_what_add_writes_in_order(database: tuple[Database, str]) -> None:
    # the credit request's write (store.quoting) uses insert_all: the same rows and entries as add, in their order
    db, _ = database
    records = [
        decide(DecisionKind.CREDIT_REQUEST, "b-9", {"amount": "10"}, [], {"rules": "v1"}, NOW),
        decide(DecisionKind.OFFER, "b-9", {"apr": "9.5"}, [], {"rules": "v1"}, NOW),
    ]
    with db.unit_of_work() as uow:  # rolled back: nothing written
        SqlDecisionRepository(uow.session).insert_all(records)
    with db.unit_of_work() as uow:
        SqlDecisionRepository(uow.session).insert_all(records, "req-9")
        uow.commit()
    with db.unit_of_work() as uow:
        repository = SqlDecisionRepository(uow.session)
        assert repository.for_subject("b-9") == records
        kept = uow.session.scalars(
            select(ComplianceDecisionRow.request_id).where(ComplianceDecisionRow.subject_ref == "b-9")
        )
        assert list(kept) == ["req-9", "req-9"]
        assert [repository.stored_hash(r.decision_id) for r in records] == [r.record_hash() for r in records]
        log = SqlAuditLog(uow.session)
        assert log.seal() == 2
        uow.commit()
    with db.unit_of_work() as uow:
        entries = SqlAuditLog(uow.session).entries()
    assert [(e.data["decisionId"], e.data["recordHash"]) for e in entries] == [
        (r.decision_id, r.record_hash()) for r in records
    ]
    assert verify(entries).ok


@pytest.mark.parametrize("tamper", ["change", "delete", "insert"])
def test_verify_names_the_first_tampered_entry(
    tamper: str,
    database: tuple[Database, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db, url = database
    _fill(db)
    _fill(db)
    with db.unit_of_work() as uow:
        SqlAuditLog(uow.session).seal()
        uow.commit()
    code, out = _verify_cli(url, monkeypatch, capsys)
    assert code == 0
    assert "6 entries" in out
    assert "verified" in out
    with db.unit_of_work() as uow:
        session = uow.session
        if tamper == "change":
            session.execute(update(AuditEntryRow).where(AuditEntryRow.seq == 3).values(subject="someone else"))
        elif tamper == "delete":
            session.execute(delete(AuditEntryRow).where(AuditEntryRow.seq == 3))
        else:
            row = session.scalars(select(AuditEntryRow).where(AuditEntryRow.seq == 2)).one()
            session.execute(update(AuditEntryRow).where(AuditEntryRow.seq >= 3).values(seq=AuditEntryRow.seq + 100))
            session.execute(update(AuditEntryRow).where(AuditEntryRow.seq >= 103).values(seq=AuditEntryRow.seq - 99))
            session.add(
                AuditEntryRow(
                    kind="key-issued",
                    subject="intruder",
                    data={"role": "admin"},
                    recorded_at=NOW,
                    seq=3,
                    prev_hash=row.entry_hash,
                    entry_hash="0x" + "ab" * 32,
                )
            )
        session.execute(text("SELECT 1"))
        uow.commit()
    code, out = _verify_cli(url, monkeypatch, capsys)
    assert code == 1
    assert "FIRST BAD: entry 3:" in out, out


def test_entries_deleted_from_the_end_are_caught_by_the_sealed_head(
    database: tuple[Database, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The last entries deleted (after the last anchor, or with none): the chain that is left walks, and it was
    reported verified; the head the sealer recorded still names the last entry sealed."""
    db, url = database
    _fill(db)
    _fill(db)
    with db.unit_of_work() as uow:
        SqlAuditLog(uow.session).seal()
        uow.commit()
    with db.unit_of_work() as uow:
        uow.session.execute(delete(AuditEntryRow).where(AuditEntryRow.seq > 4))
        uow.commit()
    code, out = _verify_cli(url, monkeypatch, capsys)
    assert code == 1
    assert "FIRST BAD: entry 6:" in out, out
    assert "the log ends at entry 4" in out
