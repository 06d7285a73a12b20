"""The README's auditor commands against a devnet and PostgreSQL: ``creditmesh reconcile`` writes its three reports
and exits 1 on a discrepancy; ``creditmesh audit anchor`` anchors the sealed head with the audit anchor key and
``creditmesh audit verify`` checks the log against the chain's anchors."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from web3.types import RPCEndpoint

from api.cli import main
from chain.config import ChainConfig
from chain.deployment import DeployedContract, DeploymentRecord
from chain.devnet import free_port
from chain.signers import devnet_account
from compliance.reconcile_chain import confirmed_head
from store.db import Database
from tests.support.devnet import DeployedChain
from tests.support.reconcile import LoanMaker

pytestmark = pytest.mark.integration


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_reconcile_then_anchor_and_verify(
    ethereum_local: DeployedChain,
    postgres_schema: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chain = ethereum_local
    url = postgres_schema(f"audit_cli_{os.urandom(3).hex()}")
    database = Database(url)
    database.migrate()
    deployments = tmp_path / "deployments"
    deployments.mkdir()
    (deployments / f"{chain.name}.json").write_text(chain.record.model_dump_json())
    chains_file = tmp_path / "chains.json"
    chains_file.write_text(json.dumps([{**chain.config.model_dump(), "explorer_tx_url": "https://scan.test/tx/{tx}"}]))
    monkeypatch.setenv("CREDITMESH_DATABASE_URL", url)
    monkeypatch.setenv("CREDITMESH_CHAINS_FILE", str(chains_file))
    monkeypatch.setenv("CREDITMESH_DEPLOYMENTS_DIR", str(deployments))
    try:
        maker = LoanMaker(chain, database)
        start = maker.head() + 1
        outside = maker.open(5, ours=False)  # the relayer's key outside our accept: no record of it at all

        code, out = _cli(["reconcile", "--chains", "all", "--from-block", str(start), "--out", str(tmp_path)], capsys)
        assert code == 1, out
        # its LoanOpened and the collateral it locked (CollateralAdded): neither recorded
        assert "2 discrepancies" in out
        assert "on-chain-not-recorded 2" in out
        # each discrepancy on stdout, not only in the reports
        opened_line = f"  [{chain.name}] on-chain-not-recorded loan #{outside.onchain_id} LoanOpened: no loan record"
        assert opened_line in out
        assert f"(tx {outside.tx_hash})" in out
        assert f"[{chain.name}] on-chain-not-recorded loan #{outside.onchain_id} CollateralAdded:" in out
        assert f"[{chain.name:16}] ##############################" in out  # the progress bar, full
        reports = sorted(p.suffix for p in tmp_path.glob("reconciliation-*"))
        assert reports == [".csv", ".html", ".json"]
        html = next(tmp_path.glob("reconciliation-*.html")).read_text()
        assert f"https://scan.test/tx/{outside.tx_hash}" in html

        code, out = _cli(["audit", "anchor"], capsys)
        assert code == 0, out
        assert f"[{chain.name}] anchored in 0x" in out
        code, out = _cli(["audit", "verify"], capsys)
        assert code == 0, out
        assert "1 anchors checked" in out
        assert "audit log verified" in out
    finally:
        database.dispose()


def test_reconcile_from_a_block_past_the_head_is_refused_and_stores_no_run(
    ethereum_local: DeployedChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It reported "blocks 1200-55: 0 facts … 0 discrepancies" and exited 0: a clean audit of no block at all."""
    chain = ethereum_local
    url = f"sqlite:///{tmp_path / 'reconcile.db'}"
    deployments = tmp_path / "deployments"
    deployments.mkdir()
    (deployments / f"{chain.name}.json").write_text(chain.record.model_dump_json())
    chains_file = tmp_path / "chains.json"
    chains_file.write_text(json.dumps([chain.config.model_dump()]))
    monkeypatch.setenv("CREDITMESH_DATABASE_URL", url)
    monkeypatch.setenv("CREDITMESH_CHAINS_FILE", str(chains_file))
    monkeypatch.setenv("CREDITMESH_DEPLOYMENTS_DIR", str(deployments))
    head = int(chain.w3.eth.block_number)
    reports = tmp_path / "reports"

    with pytest.raises(SystemExit) as refused:
        main(["reconcile", "--from-block", str(head + 1_000), "--out", str(reports)])

    said = str(refused.value.code)  # a message: the exit status is 1
    assert f"from block {head + 1_000} is past the chain's head ({chain.name}'s confirmed head is " in said
    assert said.endswith("nothing reconciled")
    assert list(reports.glob("reconciliation-*")) == []
    database = Database(url)
    try:
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql("select count(*) from reconciliation_runs").scalar_one() == 0
    finally:
        database.dispose()


def test_since_last_goes_on_from_each_chains_own_last_run_and_says_nothing_new(
    devnet_chains: dict[str, DeployedChain],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After a run of both chains and a run of one, ``--since-last`` read the other from its deployment again (the
    newest run did not name it), and a chain with no new block printed ``blocks 76-75: 0 facts``."""
    ethereum, polygon = devnet_chains["ethereum-local"], devnet_chains["polygon-local"]
    deployments = tmp_path / "deployments"
    deployments.mkdir()
    for chain in (ethereum, polygon):
        (deployments / f"{chain.name}.json").write_text(chain.record.model_dump_json())
    (tmp_path / "chains.json").write_text(json.dumps([c.config.model_dump() for c in (ethereum, polygon)]))
    monkeypatch.setenv("CREDITMESH_DATABASE_URL", f"sqlite:///{tmp_path / 'reconcile.db'}")
    monkeypatch.setenv("CREDITMESH_CHAINS_FILE", str(tmp_path / "chains.json"))
    monkeypatch.setenv("CREDITMESH_DEPLOYMENTS_DIR", str(deployments))
    reports = str(tmp_path / "reports")

    def confirmed(chain: DeployedChain) -> int:
        return confirmed_head(int(chain.w3.eth.block_number), chain.config.confirmations)

    with ethereum.snapshot(), polygon.snapshot():
        _cli(["reconcile", "--chains", "all", "--out", reports], capsys)
        polygon_done = confirmed(polygon)
        ethereum.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
        _cli(["reconcile", "--chains", ethereum.name, "--since-last", "--out", reports], capsys)
        ethereum_done = confirmed(ethereum)
        ethereum.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
        _, out = _cli(["reconcile", "--chains", "all", "--since-last", "--out", reports], capsys)
        asked = ["--to-block", str(ethereum_done)]  # before the last run's end: the line named it the head
        _, earlier = _cli(["reconcile", "--chains", ethereum.name, "--since-last", *asked, "--out", reports], capsys)

    assert f"[{ethereum.name}] blocks {ethereum_done + 1}-{ethereum_done + 1}: " in out
    said = (
        f"[{ethereum.name}] nothing new: reconciled to block {ethereum_done + 1}, after the --to-block {ethereum_done}"
    )
    assert f"{said} asked" in earlier
    assert (
        f"[{polygon.name}] nothing new: reconciled to block {polygon_done}, the confirmed head is {polygon_done}" in out
    )


@pytest.mark.parametrize("command", ["anchor", "verify"])
def test_audit_against_a_chain_that_does_not_answer_says_so_in_one_line(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the chains stopped, ``audit anchor`` and ``audit verify`` ended in an RpcUnavailable traceback."""
    database_path = tmp_path / "creditmesh.db"
    database = Database(f"sqlite:///{database_path}")
    database.migrate()
    database.dispose()
    down = ChainConfig(
        name="ethereum-local", chain_id=31337, rpc_urls=[f"http://127.0.0.1:{free_port()}"], block_time_seconds=1.0
    )
    chains_file = tmp_path / "chains.json"
    chains_file.write_text(json.dumps([down.model_dump(mode="json")]))
    anchor = DeployedContract(
        artifact="AuditAnchor", address=devnet_account(19).address, tx_hash="0x" + "ab" * 32, block=1
    )
    record = DeploymentRecord(
        chain_name=down.name, chain_id=down.chain_id, profile="devnet", contracts={"AuditAnchor": anchor}
    )
    record.save(tmp_path / "deployments" / f"{down.name}.json")
    monkeypatch.setenv("CREDITMESH_DATABASE_URL", f"sqlite:///{database_path}")
    monkeypatch.setenv("CREDITMESH_CHAINS_FILE", str(chains_file))
    monkeypatch.setenv("CREDITMESH_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))

    with pytest.raises(SystemExit) as ended:
        main(["audit", command])
    said = str(ended.value.code)
    assert said.startswith(f"audit {command}: cannot reach ethereum-local: no RPC URL of chain 31337 answered"), said
    assert said.endswith("(`audit verify --offline` checks the log alone)")
    assert "\n" not in said
    assert "Traceback" not in capsys.readouterr().err
