"""A value altered by hand into one its column cannot hold — ``loans.principal = '1.5e9'``, a proposal's ``calls``
that are no JSON, an audit entry's ``recorded_at = 'yesterday'`` (SQLite keeps any text) — crashed the auditor's
tools with a traceback. On the devnets and the admin's SQLite database: ``reconcile`` reports each such row as a
discrepancy naming table, id and column, ``audit verify`` names the entry, ``admin list`` refuses in one line."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from api.cli import main
from store.db import Database
from tests.integration.governance.support import Admin
from tests.support.reconcile import LoanMaker, OpenedLoan, index

pytestmark = pytest.mark.integration


def _proposal_and_loan(admin: Admin) -> tuple[Path, int, OpenedLoan]:
    """A proposal sent by key and a loan opened and indexed on ethereum-local, in the admin's SQLite database: its
    file, the first block indexed and the loan."""
    chain = admin.chains["ethereum-local"]
    db_file = admin.tmp / "admin.db"
    admin("--chains", chain.name, "propose", "grace-period", "172800", "--via", "key")
    database = Database(f"sqlite:///{db_file}")
    try:
        maker = LoanMaker(chain, database)
        start = maker.head() + 1
        loan = maker.open(0)
        asyncio.run(index(chain, database, start))
    finally:
        database.dispose()
    return db_file, start, loan


def test_an_unreadable_value_is_reported_by_row_not_a_traceback(
    admin: Admin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = admin.chains["ethereum-local"]
    db_file, start, loan = _proposal_and_loan(admin)
    monkeypatch.setenv("CREDITMESH_DATABASE_URL", f"sqlite:///{db_file}")
    monkeypatch.setenv("CREDITMESH_CHAINS_FILE", str(admin.tmp / "chains.json"))
    monkeypatch.setenv("CREDITMESH_DEPLOYMENTS_DIR", str(admin.tmp / "deployments"))
    main(["audit", "seal"])
    with sqlite3.connect(db_file) as connection:
        connection.execute("update loans set principal = '1.5e9' where id = ?", (loan.loan_id,))
        (proposal,) = connection.execute("select id from governance_proposals").fetchone()
        connection.execute("update governance_proposals set calls = 'not json'")
        connection.execute("update audit_entries set recorded_at = 'yesterday' where seq = 1")
    capsys.readouterr()

    listed = admin.refused("--chains", chain.name, "list")
    said = "calls holds 'not json', which cannot be read (JSONDecodeError: Expecting value: line 1 column 1 (char 0))"
    assert listed == f"refused: governance_proposals {proposal}: {said} (altered outside the platform?)\n"

    with pytest.raises(SystemExit) as ended:
        main(["reconcile", "--chains", chain.name, "--from-block", str(start), "--out", str(admin.tmp / "reports")])
    assert ended.value.code == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    unreadable = f"unreadable-record loans {loan.loan_id} principal: loans {loan.loan_id}: principal holds '1.5e9'"
    assert f"  [{chain.name}] {unreadable}" in out.out
    assert f"  [{chain.name}] unreadable-record governance_proposals {proposal} calls: " in out.out
    # the loan's opening and its entries are on the chain and in the ledger: not reported as not recorded as well
    assert "on-chain-not-recorded" not in out.out, out.out

    with pytest.raises(SystemExit) as ended:
        main(["audit", "verify", "--offline"])
    assert ended.value.code == 1
    out = capsys.readouterr()
    assert "FIRST BAD: entry 1: unreadable (altered): recorded_at holds 'yesterday'" in out.out
    assert "Traceback" not in out.err


def test_json_of_another_shape_is_reported_by_row_not_a_traceback(
    admin: Admin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid JSON that is not what its readers take — a proposal's calls as an object, its transactions as a list, a
    quote's offer as a list (PostgreSQL's JSON column takes them too) — crashed ``reconcile`` with a ``TypeError``."""
    chain = admin.chains["ethereum-local"]
    db_file, start, loan = _proposal_and_loan(admin)
    with sqlite3.connect(db_file) as connection:
        (proposal,) = connection.execute("select id from governance_proposals").fetchone()
        connection.execute("""update governance_proposals set calls = '{"0": 1}'""")
        connection.execute("update quotes set offer = '[1]' where offer_digest = ?", (loan.offer_digest,))
        (quote,) = connection.execute("select id from quotes where offer_digest = ?", (loan.offer_digest,)).fetchone()
    monkeypatch.setenv("CREDITMESH_DATABASE_URL", f"sqlite:///{db_file}")
    monkeypatch.setenv("CREDITMESH_CHAINS_FILE", str(admin.tmp / "chains.json"))
    monkeypatch.setenv("CREDITMESH_DEPLOYMENTS_DIR", str(admin.tmp / "deployments"))
    capsys.readouterr()

    with pytest.raises(SystemExit) as ended:
        main(["reconcile", "--chains", chain.name, "--from-block", str(start), "--out", str(admin.tmp / "reports")])
    assert ended.value.code == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    calls = "not a list of calls, each an object with a target, a value and data"
    said = f"governance_proposals {proposal}: calls holds '{{\"0\": 1}}', which cannot be read ({calls})"
    assert f"  [{chain.name}] unreadable-record governance_proposals {proposal} calls: {said}" in out.out, out.out
    assert f"  [{chain.name}] unreadable-record quotes {quote} offer: quotes {quote}: offer holds '[1]'" in out.out

    with sqlite3.connect(db_file) as connection:
        connection.execute("""update governance_proposals set calls = '[]', tx_hashes = '["0x01"]'""")
    listed = admin.refused("--chains", chain.name, "list")
    said = "tx_hashes holds '[\"0x01\"]', which cannot be read (not an object of text values)"
    assert listed == f"refused: governance_proposals {proposal}: {said} (altered outside the platform?)\n"
