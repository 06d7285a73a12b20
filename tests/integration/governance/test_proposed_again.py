"""An operation cancelled and proposed again — the documented way: the same calls and salt, so the same id — may be
scheduled with another delay (the Timelock's minimum rose meanwhile) or by another proposer (the key first, the Safe
after): neither is part of the id. The record kept the first scheduling's delay and proposer, and reconciliation
reported a false ``proposal-mismatch``, which also skipped the operation's state check. On the devnets and the
admin's SQLite database, as an admin and an auditor run them."""

from __future__ import annotations

import json
import os
import re
import sqlite3

import pytest

from api.cli import main
from chain.signers import devnet_account
from tests.integration.governance.support import Admin

pytestmark = pytest.mark.integration


def _reconciled(admin: Admin, chain_name: str, start: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """``creditmesh reconcile`` of one chain from ``start`` on the admin's database: its exit status and output."""
    monkeypatch.setenv("CREDITMESH_DATABASE_URL", f"sqlite:///{admin.tmp / 'admin.db'}")
    monkeypatch.setenv("CREDITMESH_CHAINS_FILE", str(admin.tmp / "chains.json"))
    monkeypatch.setenv("CREDITMESH_DEPLOYMENTS_DIR", str(admin.tmp / "deployments"))
    admin.capsys.readouterr()
    code = 0
    try:
        main(["reconcile", "--chains", chain_name, "--from-block", str(start), "--out", str(admin.tmp / "reports")])
    except SystemExit as ended:
        code = int(ended.code or 0)
    out = admin.capsys.readouterr()
    return code, out.out + out.err


def _scheduled(out: str) -> str:
    found = re.search(r"scheduled (0x[0-9a-f]{64})", out)
    assert found is not None, out
    return found.group(1)


def test_proposed_again_with_a_longer_delay_reconciles_each_scheduling_with_its_own(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = admin.chains["ethereum-local"]
    start = chain.w3.eth.block_number + 1
    propose = ("--chains", chain.name, "propose", "grace-period", "3600", "--via", "key", "--salt", "0x" + "5a" * 32)
    operation = _scheduled(admin(*propose))
    admin("--chains", chain.name, "cancel", operation)
    admin.hold_pending(chain.name, 3_600)  # governance raised the Timelock's minimum delay meanwhile
    assert _scheduled(admin(*propose)) == operation

    (row,) = admin.rows()
    assert (row.delay_seconds, row.state) == (3_600, "pending")
    assert row.tx_hashes["delay.1"] == "2"
    assert row.tx_hashes["proposer.1"] == row.proposer == devnet_account(0).address
    code, out = _reconciled(admin, chain.name, start, monkeypatch)
    assert (code, "mismatch" in out) == (0, False), out

    # an earlier scheduling's delay recorded otherwise is its own finding; the operation's state is still checked
    with sqlite3.connect(admin.tmp / "admin.db") as connection:
        hashes = dict(row.tx_hashes, **{"delay.1": "7"})
        connection.execute("update governance_proposals set tx_hashes = ?, state = 'done'", (json.dumps(hashes),))
    code, out = _reconciled(admin, chain.name, start, monkeypatch)
    assert code == 1
    assert f"proposal-mismatch {operation} proposal: delay (scheduling 1): recorded 7 s, on-chain 2 s" in out, out
    assert "proposal recorded done, the Timelock says pending" in out, out


def test_proposed_again_through_the_safe_after_the_key_records_the_safe(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = admin.chains["ethereum-local"]
    start = chain.w3.eth.block_number + 1
    salt = "0x" + os.urandom(32).hex()
    operation = _scheduled(
        admin("--chains", chain.name, "propose", "grace-period", "3600", "--via", "key", "--salt", salt)
    )
    admin("--chains", chain.name, "cancel", operation)
    proposal, signed = admin.tmp / "again.json", [admin.tmp / "12.json", admin.tmp / "14.json"]
    admin("--chains", chain.name, "propose", "grace-period", "3600", "--salt", salt, "--out", str(proposal))
    for account, signature in zip(("12", "14"), signed, strict=True):
        admin("--chains", chain.name, "sign", str(proposal), "--account", account, "--out", str(signature))
    assert operation in admin("--chains", chain.name, "submit", str(proposal), *map(str, signed))

    (row,) = admin.rows()
    safe = chain.record.address("Safe")
    assert (row.proposer.lower(), row.tx_hashes["proposer.1"]) == (safe.lower(), devnet_account(0).address)
    code, out = _reconciled(admin, chain.name, start, monkeypatch)
    assert (code, "mismatch" in out) == (0, False), out
