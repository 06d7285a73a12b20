"""``creditmesh admin`` on the three devnets: the Safe → Timelock → execute cycle on every chain in one command each,
refusals before anything is sent, dry runs, cancellation, role rotation and the decoded listing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from eth_utils.crypto import keccak
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from web3.types import RPCEndpoint

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
from tests.contracts.harness import DEPLOYER, Harness
from tests.integration.governance.support import GUARDIAN, NEW_QUOTE_SIGNER, Admin, grace_period

pytestmark = pytest.mark.integration


def test_a_safe_proposal_is_signed_submitted_and_executed_on_every_chain(admin: Admin) -> None:
    proposal = admin.tmp / "grace.json"
    out = admin("propose", "grace-period", "86400", "--out", str(proposal))
    assert out.count("CreditAggregator.setGracePeriod(newGracePeriod=86400)") == 3
    admin("sign", str(proposal), "--account", "12", "--out", str(admin.tmp / "12.json"))
    admin("sign", str(proposal), "--account", "14", "--out", str(admin.tmp / "14.json"))

    out = admin("submit", str(proposal), str(admin.tmp / "12.json"), str(admin.tmp / "14.json"))

    assert len(re.findall(r"Safe scheduled 0x[0-9a-f]{64}: tx 0x[0-9a-f]{64}", out)) == 3
    # executing before the delay is over reverts on chain: refused with the Timelock's reason and the ready time (on
    # a devnet execute mines a block first: it is held a second past the scheduling, before the 2 s delay is over,
    # however long the submit took)
    for chain in admin.chains.values():
        scheduled_at = int(chain.w3.eth.get_block("latest")["timestamp"])
        chain.w3.provider.make_request(RPCEndpoint("evm_setNextBlockTimestamp"), [scheduled_at + 1])
    early = admin.refused("execute", "--proposal", str(proposal))
    assert "is pending until" in early
    assert "TimelockUnexpectedOperationState(0x" in early  # its arguments as hex, not Python's b'...'
    assert "b'" not in early
    assert all(grace_period(chain) == 7 * 86_400 for chain in admin.chains.values())

    admin.advance(3)
    out = admin("execute", "--proposal", str(proposal))

    assert len(re.findall(r"executed 0x[0-9a-f]{64}: tx 0x[0-9a-f]{64}", out)) == 3
    assert [grace_period(chain) for chain in admin.chains.values()] == [86_400] * 3
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
    assert grace_period(chain) == 7 * 86_400  # the chain itself untouched


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
    assert grace_period(chain) == 3600


def test_execute_after_the_delay_on_an_idle_devnet_mines_a_block_and_executes(admin: Admin) -> None:
    """anvil mines only on transactions and the Timelock judges by the latest block's time: once the delay was over
    by the clock, `execute` on an idle devnet kept answering "not ready" (its latest block was the scheduling's)."""
    chain = admin.chains["arbitrum-local"]
    out = admin("--chains", chain.name, "propose", "grace-period", "7200", "--via", "key")
    operation_id = re.findall(r"scheduled (0x[0-9a-f]{64})", out)[0]
    # the 2 s delay over by the chain's clock (moved on 3 s, not waited for by the wall clock); no block mined since
    chain.w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [3])

    out = admin("--chains", chain.name, "execute", operation_id)

    assert re.search(rf"executed {operation_id}: tx 0x[0-9a-f]{{64}}", out), out
    assert grace_period(chain) == 7200


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
