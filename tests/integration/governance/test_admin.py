"""``creditmesh admin`` on the three devnets: the Safe → Timelock → execute cycle on every chain in one command each,
refusals before anything is sent, the guardian's pause everywhere, cancellation, and the decoded listing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from web3 import Web3
from web3.exceptions import ContractCustomError, Web3Exception, Web3RPCError
from web3.types import RPCEndpoint

from api.bootstrap import write_chains_file
from api.cli import main
from chain.revert import decode_revert
from chain.safe import SafeTransaction, read_safe, safe_contract, sign_safe_transaction
from chain.signers import LocalSigner, devnet_account
from chain.timelock import (
    TimelockCall,
    TimelockOperation,
    execute_call,
    read_operations,
    schedule_call,
    timelock_contract,
)
from contracts.governance.service import save_signatures
from store.compliance import AuditEntryRow
from store.governance import GovernanceActionRow, GovernanceProposalRow
from tests.contracts.harness import BORROWERS, DEPLOYER, USDC, Harness, Reverted
from tests.support.devnet import DeployedChain
from tests.support.pools import deploy_pool

pytestmark = pytest.mark.integration

GUARDIAN = LocalSigner(devnet_account(5))
NEW_QUOTE_SIGNER = devnet_account(15).address


@dataclass
class Admin:
    chains: dict[str, DeployedChain]
    tmp: Path
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str) -> str:
        """Run ``creditmesh admin …`` on every devnet; its output (stdout and stderr)."""
        self.capsys.readouterr()
        main(
            [
                "admin",
                "--chains-file",
                str(self.tmp / "chains.json"),
                "--deployments-dir",
                str(self.tmp / "deployments"),
                "--database-url",
                f"sqlite:///{self.tmp / 'admin.db'}",
                *argv,
            ]
        )
        out = self.capsys.readouterr()
        return out.out + out.err

    def refused(self, *argv: str) -> str:
        """Run a command that must be refused (exit status 1); its message."""
        with pytest.raises(SystemExit) as exit_info:
            self(*argv)
        assert exit_info.value.code == 1
        return self.capsys.readouterr().err

    def advance(self, seconds: int) -> None:
        for chain in self.chains.values():
            Harness(chain).advance(seconds)

    def rows(self) -> list[GovernanceProposalRow]:
        engine = create_engine(f"sqlite:///{self.tmp / 'admin.db'}")
        try:
            with Session(engine) as session:
                return list(session.scalars(select(GovernanceProposalRow).order_by(GovernanceProposalRow.id)))
        finally:
            engine.dispose()

    def actions(self) -> list[GovernanceActionRow]:
        """The guardian's recorded actions (pauses); none before the first admin command made the database."""
        if not (self.tmp / "admin.db").exists():
            return []
        engine = create_engine(f"sqlite:///{self.tmp / 'admin.db'}")
        try:
            with Session(engine) as session:
                return list(session.scalars(select(GovernanceActionRow).order_by(GovernanceActionRow.id)))
        finally:
            engine.dispose()

    def point(self, name: str, rpc_url: str) -> None:
        """Give chain ``name`` another RPC URL in the chains file."""
        configs = [c.config for c in self.chains.values()]
        moved = [c.model_copy(update={"rpc_urls": [rpc_url]}) if c.name == name else c for c in configs]
        write_chains_file(self.tmp / "chains.json", moved)


@pytest.fixture
def admin(
    devnet_chains: dict[str, DeployedChain], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Admin]:
    """The admin CLI against the session's devnets, every chain reverted to its deployed state afterwards."""
    write_chains_file(tmp_path / "chains.json", [chain.config for chain in devnet_chains.values()])
    for chain in devnet_chains.values():
        chain.record.save(tmp_path / "deployments" / f"{chain.name}.json")
    with ExitStack() as stack:
        for chain in devnet_chains.values():
            stack.enter_context(chain.snapshot())
        yield Admin(devnet_chains, tmp_path, capsys)


def _grace(chain: DeployedChain) -> int:
    return int(chain.contract("CreditAggregator").functions.gracePeriod().call())


def test_a_safe_proposal_is_signed_submitted_and_executed_on_every_chain(admin: Admin) -> None:
    proposal = admin.tmp / "grace.json"
    out = admin("propose", "grace-period", "86400", "--out", str(proposal))
    assert out.count("CreditAggregator.setGracePeriod(newGracePeriod=86400)") == 3
    admin("sign", str(proposal), "--account", "12", "--out", str(admin.tmp / "12.json"))
    admin("sign", str(proposal), "--account", "14", "--out", str(admin.tmp / "14.json"))

    out = admin("submit", str(proposal), str(admin.tmp / "12.json"), str(admin.tmp / "14.json"))

    assert len(re.findall(r"Safe scheduled 0x[0-9a-f]{64}: tx 0x[0-9a-f]{64}", out)) == 3
    # executing before the delay is over reverts on chain: refused with the Timelock's reason and the ready time
    early = admin.refused("execute", "--proposal", str(proposal))
    assert "is pending until" in early
    assert "TimelockUnexpectedOperationState" in early
    assert all(_grace(chain) == 7 * 86_400 for chain in admin.chains.values())

    admin.advance(3)
    out = admin("execute", "--proposal", str(proposal))

    assert len(re.findall(r"executed 0x[0-9a-f]{64}: tx 0x[0-9a-f]{64}", out)) == 3
    assert [_grace(chain) for chain in admin.chains.values()] == [86_400] * 3
    rows = admin.rows()
    assert {(row.chain_name, row.state) for row in rows} == {(name, "done") for name in admin.chains}
    assert all(set(row.tx_hashes) == {"schedule", "execute"} and row.safe_tx_hash for row in rows)
    assert {row.proposer for row in rows} == {chain.record.address("Safe") for chain in admin.chains.values()}
    # the audit log's entries carry what each operation does, so its hash chain covers the calls too
    engine = create_engine(f"sqlite:///{admin.tmp / 'admin.db'}")
    try:
        with Session(engine) as session:
            entries = list(session.scalars(select(AuditEntryRow).where(AuditEntryRow.kind == "governance")))
    finally:
        engine.dispose()
    calls = {row.operation_id: [{k: c[k] for k in ("target", "value", "data")} for c in row.calls] for row in rows}
    assert entries
    assert all(entry.data["calls"] == calls[entry.data["operationId"]] for entry in entries)


def test_too_few_or_foreign_signatures_are_refused_before_sending(admin: Admin) -> None:
    proposal = admin.tmp / "p.json"
    admin("propose", "reserve-factor", "USDC", "1500", "--out", str(proposal))
    admin("sign", str(proposal), "--account", "13", "--out", str(admin.tmp / "13.json"))
    admin("sign", str(proposal), "--account", "9", "--out", str(admin.tmp / "stranger.json"))
    nonces = {name: read_safe(safe_contract(c.w3, c.record.address("Safe"))).nonce for name, c in admin.chains.items()}

    one = admin.refused("submit", str(proposal), str(admin.tmp / "13.json"))
    foreign = admin.refused("submit", str(proposal), str(admin.tmp / "13.json"), str(admin.tmp / "stranger.json"))

    assert "needs 2 owners' signatures, got 1" in one
    assert f"{devnet_account(9).address} is not an owner" in foreign
    after = {name: read_safe(safe_contract(c.w3, c.record.address("Safe"))).nonce for name, c in admin.chains.items()}
    assert after == nonces


def test_a_parameter_out_of_bounds_is_refused_before_any_transaction(admin: Admin) -> None:
    sent = {name: chain.w3.eth.get_transaction_count(DEPLOYER.address) for name, chain in admin.chains.items()}

    refused = admin.refused("propose", "reserve-factor", "USDC", "9000", "--via", "key")
    collateral = admin.refused("propose", "collateral", "WETH", "9000", "8500", "500", "1000", "--via", "key")

    assert "InvalidReserveFactor(9000)" in refused
    assert "InvalidCollateralParameters(9000, 8500, 500)" in collateral
    assert {name: c.w3.eth.get_transaction_count(DEPLOYER.address) for name, c in admin.chains.items()} == sent
    assert admin.rows() == []


def test_a_proposal_refused_on_one_chain_says_which_chains_it_was_scheduled_on(admin: Admin) -> None:
    """The same operation (same calls, same salt) already scheduled on arbitrum-local: proposing it everywhere schedules
    it on the first two chains and is refused on the third. The refusal used to hide the two transactions sent."""
    salt = "0x" + "5a" * 32
    admin("--chains", "arbitrum-local", "propose", "grace-period", "172800", "--via", "key", "--salt", salt)

    with pytest.raises(SystemExit) as refused:
        admin("propose", "grace-period", "172800", "--via", "key", "--salt", salt)
    out = admin.capsys.readouterr()

    assert refused.value.code == 1
    assert "refused:" in out.err
    sent = dict(re.findall(r"\[(\S+)\] 0x[0-9a-f]{64}: (schedule sent: tx 0x[0-9a-f]{64}|nothing sent)", out.out))
    assert {name: text.split(":")[0] for name, text in sent.items()} == {
        "ethereum-local": "schedule sent",
        "polygon-local": "schedule sent",
        "arbitrum-local": "nothing sent",
    }
    rows = admin.rows()
    assert sorted(row.chain_name for row in rows) == ["arbitrum-local", "ethereum-local", "polygon-local"]


def test_dry_run_shows_values_before_and_after(admin: Admin) -> None:
    out = admin("--chains", "polygon-local", "propose", "rate-model", "USDC", "100", "700", "5000", "8500", "--dry-run")
    assert "[polygon-local] LendingPool:USDC.setRateModel(100, 700, 5000, 8500): [200, 800, 6000, 8000] -> " in out
    assert "[100, 700, 5000, 8500]" in out
    out = admin(
        "--chains", "polygon-local", "propose", "liquidation-thresholds", "300000000000", "50000000000", "--dry-run"
    )
    assert "setLiquidationThresholds(300000000000, 50000000000): [200000000000, 100000000000] -> " in out
    feed = admin.chains["polygon-local"].record.address("PriceFeed:USDC")
    out = admin("--chains", "polygon-local", "propose", "price-feed", "WETH", feed, "7200", "--dry-run")
    assert f"-> ['{feed}', 7200]" in out
    relayer, successor = devnet_account(1).address, devnet_account(18).address
    out = admin("--chains", "polygon-local", "propose", "rotate", "relayer", relayer, successor, "--dry-run")
    assert re.search(rf"CreditAggregator\.grantRole\(0x[0-9a-f]{{64}}, {successor}\): False -> True", out)
    assert re.search(rf"CreditAggregator\.revokeRole\(0x[0-9a-f]{{64}}, {relayer}\): True -> False", out)


def test_dry_run_on_a_fork_reads_the_values_the_batch_leaves(admin: Admin) -> None:
    chain = admin.chains["arbitrum-local"]
    batch = admin.tmp / "batch.json"
    batch.write_text(
        '[{"contract": "CreditAggregator", "function": "setGracePeriod", "args": [3600]},'
        ' {"contract": "LendingPool:USDC", "function": "setReserveFactor", "args": [2500]}]'
    )

    out = admin("--chains", chain.name, "propose", "batch", str(batch), "--dry-run", "--fork")

    assert "[arbitrum-local] CreditAggregator.setGracePeriod(3600): 604800 -> 3600" in out
    assert "[arbitrum-local] LendingPool:USDC.setReserveFactor(2500): 1000 -> 2500" in out
    assert _grace(chain) == 7 * 86_400  # the chain itself untouched


def test_pause_everywhere_blocks_opening_but_not_repaying_and_only_the_timelock_unpauses(admin: Admin) -> None:
    harnesses = [Harness(chain) for chain in admin.chains.values()]
    borrower = BORROWERS[3]
    loans = []
    for harness in harnesses:
        harness.fund(borrower.address, usdc=100 * USDC, weth=10**18)
        harness.approve_all(borrower.address)
        loans.append(harness.open_loan(borrower)[0])

    out = admin("pause")

    assert out.count("CreditAggregator.pause: tx 0x") == 3
    for harness, loan_id in zip(harnesses, loans, strict=True):
        with pytest.raises(Reverted) as reverted:
            harness.open_loan(borrower)
        assert reverted.value.error is not None
        assert reverted.value.error.name == "EnforcedPause"
        harness.send(harness.aggregator.functions.repay(loan_id, 10 * USDC), borrower)
    # the guardian cannot unpause: only the Timelock (DEFAULT_ADMIN_ROLE) can
    for harness in harnesses:
        with pytest.raises(ContractCustomError) as refused:
            harness.aggregator.functions.unpause().call({"from": GUARDIAN.address})
        decoded = decode_revert(refused.value.data, ("CreditAggregator",))
        assert decoded is not None
        assert decoded.name == "AccessControlUnauthorizedAccount"
    assert "already paused" in admin("pause")

    admin("propose", "unpause", "--via", "key")
    admin.advance(3)
    for scheduled in admin("list", "--state", "ready").splitlines():
        match = re.match(r"\[(\S+)\] (0x[0-9a-f]{64}) ready", scheduled)
        if match:
            admin("--chains", match.group(1), "execute", match.group(2))
    assert not any(h.aggregator.functions.paused().call() for h in harnesses)


def test_a_cancelled_batch_is_listed_decoded_and_cannot_execute(admin: Admin) -> None:
    old = devnet_account(2).address
    out = admin(
        "--chains", "arbitrum-local", "propose", "rotate", "quote-signer", old, NEW_QUOTE_SIGNER, "--via", "key"
    )
    operation_id = re.search(r"scheduled (0x[0-9a-f]{64})", out)
    assert operation_id is not None

    listing = admin("--chains", "arbitrum-local", "list")

    assert f"{operation_id.group(1)} pending" in listing
    grant, revoke = (
        line for line in listing.splitlines() if "CreditAggregator.grantRole" in line or "revokeRole" in line
    )
    assert f"account={NEW_QUOTE_SIGNER}" in grant
    assert "CreditAggregator.revokeRole(role=0x" in revoke
    assert f"account={old}" in revoke

    admin("--chains", "arbitrum-local", "cancel", operation_id.group(1))
    admin.advance(3)
    refused = admin.refused("--chains", "arbitrum-local", "execute", operation_id.group(1))

    assert f"operation {operation_id.group(1)} is cancelled" in refused
    assert f"{operation_id.group(1)} cancelled" in admin("--chains", "arbitrum-local", "list")
    (row,) = admin.rows()
    assert (row.state, set(row.tx_hashes)) == ("cancelled", {"schedule", "cancel"})


def test_production_refuses_devnet_chains_and_keys(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITMESH_ENVIRONMENT", "production")
    refused = admin.refused("pause")
    assert "devnet chain id 31337" in refused
    assert all(not h.functions.paused().call() for h in (c.contract("CreditAggregator") for c in admin.chains.values()))


def test_redeploy_sends_nothing_and_verify_reports_a_tampered_address(admin: Admin) -> None:
    out = admin("deploy")
    assert out.count("nothing to send: already deployed") == 3
    assert len(re.findall(r"bytecode verified for (\d+) of \1 contracts", out)) == 3

    chain = admin.chains["polygon-local"]
    pool = chain.record.address("LendingPool:USDC")
    weth_code = chain.w3.eth.get_code(chain.record.address("WETH")).to_0x_hex()
    chain.w3.provider.make_request("anvil_setCode", [pool, weth_code])  # type: ignore[arg-type]
    with pytest.raises(SystemExit, match="1 contract"):
        admin("verify")
    out = admin.capsys.readouterr().out
    assert f"[polygon-local] MISMATCH LendingPool:USDC       {pool}" in out


def test_the_safe_cancels_a_scheduled_proposal_with_two_owners(admin: Admin) -> None:
    proposal = admin.tmp / "grace.json"
    admin("--chains", "ethereum-local", "propose", "grace-period", "3600", "--out", str(proposal))
    signed = [str(admin.tmp / f"{owner}.json") for owner in (12, 13)]
    for owner, path in zip((12, 13), signed, strict=True):
        admin("sign", str(proposal), "--account", str(owner), "--out", path)
    admin("--chains", "ethereum-local", "submit", str(proposal), *signed)

    cancellation = admin.tmp / "cancel.json"
    admin(
        "--chains", "ethereum-local", "cancel", "--proposal", str(proposal), "--via", "safe", "--out", str(cancellation)
    )
    for owner, path in zip((12, 13), signed, strict=True):
        admin("sign", str(cancellation), "--account", str(owner), "--out", path)
    out = admin("--chains", "ethereum-local", "submit", str(cancellation), *signed)

    assert re.search(r"\[ethereum-local\] Safe cancelled 0x[0-9a-f]{64}: tx 0x[0-9a-f]{64}", out)
    assert "cancelled" in admin("--chains", "ethereum-local", "list", "--state", "cancelled")
    (row,) = admin.rows()
    assert (row.state, set(row.tx_hashes)) == ("cancelled", {"schedule", "cancel"})


@pytest.mark.slow  # ape's start-up (plugins, project) takes ~30 s on these shared machines: out of the default run
def test_ape_run_governance_verifies_the_chain_of_its_network(admin: Admin) -> None:
    chain = admin.chains["polygon-local"]
    env = os.environ | {
        "CREDITMESH_CHAINS_FILE": str(admin.tmp / "chains.json"),
        "CREDITMESH_DEPLOYMENTS_DIR": str(admin.tmp / "deployments"),
        "CREDITMESH_DATABASE_URL": f"sqlite:///{admin.tmp / 'admin.db'}",
    }
    network = f"ethereum:polygon-local:{chain.devnet.rpc_url}"
    ape = Path(sys.executable).parent / "ape"
    run = subprocess.run(
        [str(ape), "run", "governance", "--network", network, "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert re.search(r"\[polygon-local\] bytecode verified for (\d+) of \1 contracts", run.stdout)
    assert "ethereum-local" not in run.stdout


def test_rotating_the_guardian_grants_the_new_key_everywhere_before_revoking_the_old(admin: Admin) -> None:
    chain = admin.chains["ethereum-local"]
    old, new = devnet_account(5).address, devnet_account(16).address
    out = admin("--chains", chain.name, "propose", "rotate", "guardian", old, new, "--via", "key")
    operation_id = re.search(r"operation (0x[0-9a-f]{64})", out)
    assert operation_id is not None
    assert out.index("grantRole") < out.index("revokeRole")
    admin.advance(3)
    # executed outside creditmesh admin (anyone may): the record catches up when the operations are listed
    (scheduled,) = read_operations(timelock_contract(chain.w3, chain.record.address("Timelock")))
    execute = execute_call(chain.record.address("Timelock"), scheduled.operation)
    timelock = chain.record.address("Timelock")
    tx_hash = chain.w3.eth.send_transaction({"from": DEPLOYER.address, "to": timelock, "data": execute.data})
    assert chain.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1

    assert f"{operation_id.group(1)} done" in admin("--chains", chain.name, "list")
    (row,) = admin.rows()
    assert (row.state, row.tx_hashes["execute"]) == ("done", tx_hash.to_0x_hex())
    guardian_role = keccak(text="GUARDIAN_ROLE")
    for key in ("CreditAggregator", "CollateralManager", "LendingPool:USDC"):
        contract = chain.contract(key)
        assert contract.functions.hasRole(guardian_role, new).call(), key
        assert not contract.functions.hasRole(guardian_role, old).call(), key


def test_an_operation_scheduled_again_after_its_cancellation_is_listed_once_and_executes(admin: Admin) -> None:
    """The same calls and salt scheduled again after a cancellation have the same id: both schedulings' events were
    merged into one operation with every call twice (another id), which `execute` then said was never scheduled."""
    chain = admin.chains["ethereum-local"]
    propose = ("--chains", chain.name, "propose", "grace-period", "3600", "--via", "key", "--salt", "0x" + "77" * 32)
    operation_id = re.search(r"scheduled (0x[0-9a-f]{64})", admin(*propose))
    assert operation_id is not None
    admin("--chains", chain.name, "cancel", operation_id.group(1))
    admin(*propose)
    admin.advance(3)

    listing = admin("--chains", chain.name, "list")

    assert f"{operation_id.group(1)} ready" in listing
    assert listing.count("CreditAggregator.setGracePeriod(newGracePeriod=3600)") == 1
    assert "cancelled" not in listing
    admin("--chains", chain.name, "execute", operation_id.group(1))
    assert _grace(chain) == 3600


def test_unpause_proposes_only_the_paused_contracts_and_pausable_errors_decode(admin: Admin) -> None:
    """With one contract paused, `propose unpause` included every pausable contract and the running ones' unpause
    reverted the whole proposal, shown as raw bytes 0x8dfc202b (OpenZeppelin's ExpectedPause())."""
    chain = admin.chains["polygon-local"]
    Harness(chain).send(chain.contract("CreditAggregator").functions.pause(), GUARDIAN.address)

    out = admin("--chains", chain.name, "propose", "unpause", "--via", "key")

    assert re.findall(r"\.unpause\(\)", out) == [".unpause()"]
    assert "CreditAggregator.unpause()" in out
    batch = admin.tmp / "batch.json"
    batch.write_text('[{"contract": "CollateralManager", "function": "unpause"}]')
    assert "CollateralManager.unpause() would revert as the Timelock: ExpectedPause()" in admin.refused(
        "--chains", chain.name, "propose", "batch", str(batch), "--via", "key"
    )
    admin.advance(3)
    admin("--chains", chain.name, "execute", re.findall(r"scheduled (0x[0-9a-f]{64})", out)[0])
    assert not chain.contract("CreditAggregator").functions.paused().call()
    refused = admin.refused("--chains", chain.name, "propose", "unpause", "--via", "key")
    assert "polygon-local: none of " in refused
    assert "is paused: nothing to unpause" in refused


def _paused(chain: DeployedChain) -> bool:
    return bool(chain.contract("CreditAggregator").functions.paused().call())


def test_an_rpc_serving_another_chain_is_refused_before_anything_is_sent(admin: Admin) -> None:
    """ethereum-local's RPC pointed at polygon's node: `pause` paused polygon and recorded it under ethereum-local."""
    admin.point("ethereum-local", admin.chains["polygon-local"].devnet.rpc_url)
    sent = {name: chain.w3.eth.get_transaction_count(DEPLOYER.address) for name, chain in admin.chains.items()}

    paused = admin.refused("--chains", "ethereum-local", "pause", "--reason", "incident")
    proposed = admin.refused("propose", "grace-period", "86400", "--via", "key")

    for refusal in (paused, proposed):
        assert "(given for ethereum-local) serves chain id 31338, configured 31337: refusing to connect" in refusal
    assert not any(_paused(chain) for chain in admin.chains.values())
    assert admin.actions() == []
    assert {name: c.w3.eth.get_transaction_count(DEPLOYER.address) for name, c in admin.chains.items()} == sent


def test_pause_tries_every_chain_and_names_each_that_failed(admin: Admin) -> None:
    """ethereum-local's RPC down and the guardian without its role on polygon-local's CreditAggregator: `pause` used to
    stop at the first chain with a ConnectionError traceback, so no chain was paused."""
    polygon = Harness(admin.chains["polygon-local"])
    polygon.govern(polygon.aggregator, "revokeRole", keccak(text="GUARDIAN_ROLE"), GUARDIAN.address)
    admin.point("ethereum-local", "http://127.0.0.1:9")

    with pytest.raises(SystemExit) as refused:
        admin("pause", "--reason", "incident")
    out = admin.capsys.readouterr()

    assert refused.value.code == 1
    assert "[ethereum-local] pause FAILED: RPC http://127.0.0.1:9 does not answer (ConnectionError)" in out.out
    assert "[polygon-local] CollateralManager.pause: tx 0x" in out.out
    assert "[polygon-local] pause FAILED: CreditAggregator.pause: " in out.out
    assert out.out.count("[arbitrum-local] ") == 3  # CreditAggregator, CollateralManager, LendingPool:USDC
    (line,) = out.err.splitlines()
    assert line.startswith("refused: pause failed on 2 of 3 chain(s) (ethereum-local: RPC http://127.0.0.1:9 ")
    assert "; polygon-local: CreditAggregator.pause: pause-CreditAggregator reverted: AccessControlUnauthorized" in line
    assert _paused(admin.chains["arbitrum-local"])
    assert not _paused(admin.chains["polygon-local"])
    assert polygon.pool.functions.paused().call()
    assert {(row.chain_name, row.contract) for row in admin.actions() if row.chain_name == "polygon-local"} == {
        ("polygon-local", "CollateralManager"),
        ("polygon-local", "LendingPool:USDC"),
    }


def test_cancel_by_key_tries_every_chain(admin: Admin) -> None:
    """Cancelling an operation everywhere stopped at the first chain that refused (here: one where the id was never
    scheduled), before the chain that has it."""
    proposed = admin("--chains", "polygon-local", "propose", "grace-period", "3600", "--via", "key")
    operation_id = re.search(r"scheduled (0x[0-9a-f]{64})", proposed)
    assert operation_id is not None
    admin.point("arbitrum-local", "http://127.0.0.1:9")

    with pytest.raises(SystemExit) as refused:
        admin("cancel", operation_id.group(1))
    out = admin.capsys.readouterr()

    assert refused.value.code == 1
    assert re.search(rf"\[polygon-local\] cancelled {operation_id.group(1)}: tx 0x", out.out)
    (line,) = out.err.splitlines()
    assert line.startswith(f"refused: cancel failed on 2 of 3 chain(s) (ethereum-local: no operation {operation_id[1]}")
    assert "; arbitrum-local: RPC http://127.0.0.1:9 does not answer (ConnectionError))" in line
    (row,) = admin.rows()
    assert (row.chain_name, row.state) == ("polygon-local", "cancelled")


def test_owners_sign_and_submit_only_the_safe_transaction_that_schedules_the_file_s_proposal(admin: Admin) -> None:
    """A proposal file's SafeTx was never checked against the proposal it carries: owners signed a SafeTx scheduling
    another operation (here: the Timelock's admin role for a stranger) while the file showed a grace period, and
    `submit` scheduled it and recorded the grace period."""
    chain = admin.chains["ethereum-local"]
    proposal = admin.tmp / "grace.json"
    admin("--chains", chain.name, "propose", "grace-period", "86400", "--out", str(proposal))
    honest = json.loads(proposal.read_text())
    signed = admin("sign", str(proposal), "--account", "12", "--out", str(admin.tmp / "honest.json"))
    assert re.search(r"nonce 0\): schedule of operation 0x[0-9a-f]{64} \(delay 2 s\) on Timelock 0x", signed)
    assert "[ethereum-local]     CreditAggregator.setGracePeriod(newGracePeriod=86400)" in signed
    offline = admin("--deployments-dir", str(admin.tmp / "none"), "sign", str(proposal), "--account", "12")
    assert f"    {chain.record.address('CreditAggregator')}.setGracePeriod(newGracePeriod=86400)" in offline

    tampered = json.loads(proposal.read_text())
    aggregator = chain.contract("CreditAggregator")
    grant = aggregator.encode_abi("grantRole", [b"\x00" * 32, devnet_account(19).address])
    evil = TimelockOperation((TimelockCall(aggregator.address, bytes.fromhex(grant[2:])),), salt=b"\x01" * 32)
    schedule = schedule_call(chain.record.address("Timelock"), evil, 2)
    tampered["proposals"][0]["safeTx"]["data"] = "0x" + schedule.data.hex()
    proposal.write_text(json.dumps(tampered))

    refused = admin.refused("sign", str(proposal), "--account", "12")

    assert "the SafeTx is not the one that schedules operation " in refused
    assert f"its data is schedule of operation 0x{evil.operation_id.hex()} (delay 2 s), not schedule of" in refused
    # signatures made some other way are refused by submit, before anything is sent
    transaction = SafeTransaction.from_json(tampered["proposals"][0]["safeTx"])
    signatures = [str(admin.tmp / f"{owner}.json") for owner in (12, 13)]
    for owner, path in zip((12, 13), signatures, strict=True):
        save_signatures(Path(path), [sign_safe_transaction(transaction, LocalSigner(devnet_account(owner)))])
    submitted = admin.refused("--chains", chain.name, "submit", str(proposal), *signatures)
    assert f"schedule of operation 0x{evil.operation_id.hex()}" in submitted
    assert read_safe(safe_contract(chain.w3, chain.record.address("Safe"))).nonce == 0
    assert admin.rows() == []
    honest["proposals"][0]["safeTx"]["to"] = chain.record.address("CreditAggregator")
    proposal.write_text(json.dumps(honest))
    redirected = admin.refused("sign", str(proposal), "--account", "12")
    assert f"its to is {chain.record.address('CreditAggregator')}, not {chain.record.address('Timelock')}" in redirected


def test_a_pool_registered_after_the_deployment_is_governed_and_paused_with_the_rest(admin: Admin) -> None:
    """A pool the Timelock does not administer is refused registration; one it does, once registered, is reached by
    the guardian's grant and by `pause`. Before, every command took its targets from the deployments record alone,
    so `pause` left the new pool open, and a pool its deployer still administered was registered."""
    chain = admin.chains["ethereum-local"]
    h = Harness(chain)
    guardian_role = keccak(text="GUARDIAN_ROLE")
    kept = deploy_pool(h)  # its deployer administers it
    refused = admin.refused("--chains", chain.name, "propose", "register-pool", kept.address, "--via", "key")
    assert f"the Timelock does not administer pool {kept.address}" in refused

    pool = deploy_pool(h, admin=h.timelock.address)
    proposed = admin("--chains", chain.name, "propose", "register-pool", pool.address, "--via", "key")
    registered = re.search(r"scheduled (0x[0-9a-f]{64})", proposed)
    assert registered is not None
    admin.advance(3)
    admin("--chains", chain.name, "execute", registered.group(1))
    assert h.aggregator.functions.poolId(pool.address).call() != 0

    proposed = admin("--chains", chain.name, "propose", "grant", "guardian", GUARDIAN.address, "--via", "key")
    assert f"LendingPool:{pool.address}.grantRole" in proposed
    granted = re.search(r"scheduled (0x[0-9a-f]{64})", proposed)
    assert granted is not None
    admin.advance(3)
    admin("--chains", chain.name, "execute", granted.group(1))
    assert pool.functions.hasRole(guardian_role, GUARDIAN.address).call()

    out = admin("--chains", chain.name, "pause", "--reason", "incident")
    assert f"LendingPool:{pool.address}.pause: tx 0x" in out
    assert pool.functions.paused().call()
    assert not kept.functions.paused().call(), "an unregistered pool is not ours to pause"


def test_a_pause_reaches_the_recorded_contracts_when_the_registered_pools_cannot_be_read(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An RPC provider that refuses the PoolRegistered read (a block range too wide, say) is a warning, never a
    refusal: the guardian's pause must reach what the deployments record lists."""

    def refused(w3: object, record: object) -> object:
        raise Web3Exception("query exceeds max block range 10000")

    monkeypatch.setattr("api.cli.admin.with_registered_pools", refused)
    out = admin("--chains", "ethereum-local", "pause", "--reason", "incident")
    assert "[ethereum-local] LendingPool:USDC.pause: tx 0x" in out
    assert "warning: ethereum-local: pools registered after the deployment not read (Web3Exception" in out
    assert _paused(admin.chains["ethereum-local"])


def test_the_timelock_is_read_in_ranges_an_rpc_allows(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    """An RPC that refuses an eth_getLogs spanning more blocks than it allows: the Timelock's operations are still
    listed. Each event's whole history was read in one call, which such an RPC refused, and with it list, execute
    and cancel on an old Timelock."""
    chain = admin.chains["ethereum-local"]
    proposed = admin("--chains", chain.name, "propose", "grace-period", "7200", "--via", "key")
    scheduled = re.search(r"scheduled (0x[0-9a-f]{64})", proposed)
    assert scheduled is not None
    for _ in range(25):
        chain.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    w3 = Web3(Web3.HTTPProvider(chain.config.rpc_urls[0]))
    get_logs, allowed = w3.eth.get_logs, 8

    def limited(params: Any) -> Any:
        last = w3.eth.block_number if params.get("toBlock", "latest") == "latest" else int(params["toBlock"])
        if last - int(params["fromBlock"]) + 1 > allowed:
            raise Web3RPCError("query exceeds the block range this node allows")
        return get_logs(params)

    monkeypatch.setattr(w3.eth, "get_logs", limited)
    monkeypatch.setattr("chain.timelock.LOG_RANGE", allowed, raising=False)
    timelock = timelock_contract(w3, chain.record.address("Timelock"))
    listed = read_operations(timelock, chain.record.contracts["Timelock"].block)
    assert ("0x" + listed[-1].operation_id.hex(), listed[-1].state.value) == (scheduled.group(1), "pending")
