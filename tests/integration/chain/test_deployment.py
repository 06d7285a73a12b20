"""Deployment through the lifecycle: idempotent re-runs (same addresses, no new transaction), a record rebuilt from
the persisted intents, a deploy killed after signing or while its transaction waits to be mined resumed without a
second contract, failed steps retried on the next run, and no thread left behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from web3 import Web3

from chain.artifacts import load_artifact
from chain.deployment import Deployer, DeploymentRecord
from chain.devnet import Devnet
from chain.errors import ConfigurationError, TransactionReverted
from chain.safe import read_safe, safe_contract
from chain.signers import Role, devnet_signer
from chain.verification import CodeStatus, verify_record
from contracts.deploy import deploy_to_devnet
from store.chain import CONFIRMED, ChainAttemptRow, ChainIntentRow
from store.db import make_engine
from tests.integration.chain.deploy_worker import MINT_TO, deploy
from tests.integration.chain.support import fresh_anvil

pytestmark = pytest.mark.integration

DEPLOYER = devnet_signer(Role.DEPLOYER).address
TOKEN_INTENT = "deploy:31337:Token"


def _w3(devnet: Devnet) -> Web3:
    return Web3(Web3.HTTPProvider(devnet.rpc_url))


def _record() -> DeploymentRecord:
    return DeploymentRecord(chain_name="ethereum-local", chain_id=31337, profile="devnet")


def _deployer(devnet: Devnet, path: Path | None, record: DeploymentRecord | None = None) -> Deployer:
    return Deployer(_w3(devnet), devnet_signer(Role.DEPLOYER), record or _record(), path)


def _intents(path: Path) -> dict[str, ChainIntentRow]:
    engine = make_engine(f"sqlite:///{path}")
    try:
        with Session(engine) as session:
            return {row.key: row for row in session.scalars(select(ChainIntentRow))}
    finally:
        engine.dispose()


def _signed_hash(path: Path, intent_key: str) -> str:
    """The one transaction signed for ``intent_key``."""
    engine = make_engine(f"sqlite:///{path}")
    try:
        with Session(engine) as session:
            (attempt,) = session.scalars(select(ChainAttemptRow).where(ChainAttemptRow.intent_key == intent_key))
            return attempt.tx_hash
    finally:
        engine.dispose()


def _threads_left(before: set[threading.Thread], within: float = 5.0) -> list[str]:
    """Names of threads started since ``before`` that are still alive after ``within`` seconds, but the chain stores'
    pool's: it is the process's (``store.chain_batches.chain_threads``), never shut down, and starts a thread when
    more work is in flight than it has threads, whichever test that falls in (CI failed here once on
    ``chain-db_2``)."""
    deadline = time.monotonic() + within
    while True:
        extra = [
            t.name
            for t in threading.enumerate()
            if t not in before and t.is_alive() and not t.name.startswith("chain-db")
        ]
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.05)


def test_deploying_the_devnet_set_twice_is_idempotent_and_recorded(anvil: Devnet, tmp_path: Path) -> None:
    before = set(threading.enumerate())
    path = tmp_path / "ethereum-local.json"
    first = deploy_to_devnet(anvil.name, anvil.chain_id, anvil.rpc_url, path)
    assert _threads_left(before) == []  # deploy_to_devnet never closes its Deployer: the finalizer does
    w3 = _w3(anvil)
    sent, head = w3.eth.get_transaction_count(DEPLOYER), w3.eth.block_number

    second = deploy_to_devnet(anvil.name, anvil.chain_id, anvil.rpc_url, path)

    assert {k: c.address for k, c in second.contracts.items()} == {k: c.address for k, c in first.contracts.items()}
    assert second.steps == first.steps
    assert (w3.eth.get_transaction_count(DEPLOYER), w3.eth.block_number) == (sent, head)  # no new transaction
    assert DeploymentRecord.load(path) == second
    genesis = w3.eth.get_block(0)["hash"]
    assert genesis is not None
    assert first.genesis_hash == genesis.to_0x_hex()
    assert first.source_commit not in ("", "unknown")
    for deployed in first.contracts.values():
        receipt = w3.eth.get_transaction_receipt(deployed.tx_hash)  # type: ignore[arg-type]
        # the Safe is a proxy its factory creates (the creating transaction's logs name it)
        created = receipt["contractAddress"] or next(log["address"] for log in receipt["logs"])
        assert (created, receipt["blockNumber"]) == (deployed.address, deployed.block)
        assert w3.eth.get_code(deployed.address)
    aggregator = first.contracts["CreditAggregator"]
    assert aggregator.compiler
    assert len(aggregator.constructor_args) == 4
    # Every transaction went through the lifecycle, each intent with its own nonce — except at most the Timelock,
    # which contracts/deploy.py sends itself. The keeper's approvals are the keeper's own (its key, its nonces).
    (intents_db,) = tmp_path.glob("ethereum-local.json.*.intents.db")
    everyone = _intents(intents_db)
    assert {row.status for row in everyone.values()} == {CONFIRMED}
    intents = {key: row for key, row in everyone.items() if row.sender == DEPLOYER}
    assert {key for key in everyone if key not in intents} == {f"step:{anvil.chain_id}:keeper-approve-USDC"}
    nonces = sorted(row.nonce for row in intents.values() if row.nonce is not None)
    assert len(set(nonces)) == len(intents) >= sent - 1
    assert nonces[-1] < sent
    assert _threads_left(before) == []


def test_a_redeploy_verifies_the_runtime_code_and_reports_a_tampered_address(anvil: Devnet, tmp_path: Path) -> None:
    path = tmp_path / "ethereum-local.json"
    record = deploy_to_devnet(anvil.name, anvil.chain_id, anvil.rpc_url, path)
    w3 = _w3(anvil)
    checks = verify_record(w3, record)
    assert {check.key for check in checks} == set(record.contracts)
    assert {check.status for check in checks} == {CodeStatus.VERIFIED}
    # the Safe proposes to the Timelock; the deployer stays a second devnet proposer (contract tests govern)
    timelock = w3.eth.contract(address=record.address("Timelock"), abi=load_artifact("TimelockController").abi)
    proposer = timelock.functions.PROPOSER_ROLE().call()
    assert timelock.functions.hasRole(proposer, record.address("Safe")).call()
    assert timelock.functions.hasRole(proposer, DEPLOYER).call()
    safe = read_safe(safe_contract(w3, record.address("Safe")))
    assert (len(safe.owners), safe.threshold) == (3, 2)

    aggregator = record.address("CreditAggregator")
    w3.provider.make_request("anvil_setCode", [aggregator, w3.eth.get_code(record.address("USDC")).to_0x_hex()])  # type: ignore[arg-type]
    sent = w3.eth.get_transaction_count(DEPLOYER)
    again = deploy_to_devnet(anvil.name, anvil.chain_id, anvil.rpc_url, path)

    assert w3.eth.get_transaction_count(DEPLOYER) == sent
    mismatched = [check for check in verify_record(w3, again) if check.status is not CodeStatus.VERIFIED]
    assert [(check.key, check.status) for check in mismatched] == [("CreditAggregator", CodeStatus.MISMATCH)]


def test_a_lost_record_is_rebuilt_from_the_intents_without_new_transactions(anvil: Devnet, tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    with _deployer(anvil, path) as first:
        deploy(first)
    w3 = _w3(anvil)
    sent = w3.eth.get_transaction_count(DEPLOYER)
    assert sent == 2
    path.unlink()

    with _deployer(anvil, path) as again:
        deploy(again)

    assert again.record.contracts["Token"] == first.record.contracts["Token"]
    assert again.record.steps == ["mint"]
    assert w3.eth.get_transaction_count(DEPLOYER) == sent


def _worker(devnet: Devnet, record: Path, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests.integration.chain.deploy_worker", devnet.rpc_url, str(record), *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _resume_and_check(devnet: Devnet, record: Path, signed_hash: str) -> None:
    """Re-run the recipe: the interrupted deploy settles as the transaction signed before the kill, and nothing
    else is deployed (the account's only transactions are that deploy and the mint)."""
    with _deployer(devnet, record) as deployer:
        deploy(deployer)
    w3 = _w3(devnet)
    token = deployer.record.contracts["Token"]
    assert token.tx_hash == signed_hash
    assert w3.eth.get_transaction_receipt(signed_hash)["contractAddress"] == token.address  # type: ignore[arg-type]
    assert w3.eth.get_transaction_count(DEPLOYER) == 2
    balance = deployer.contract("Token").functions.balanceOf(Web3.to_checksum_address(MINT_TO)).call()
    assert balance == 10**18


def test_a_deploy_killed_after_signing_resumes_without_a_second_contract(anvil: Devnet, tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    worker = _worker(anvil, record, "--kill-after-signing", TOKEN_INTENT)
    stdout, stderr = worker.communicate(timeout=120)
    assert worker.returncode == -signal.SIGKILL, stderr
    intents_db = Path(stdout.splitlines()[0])
    intent = _intents(intents_db)[TOKEN_INTENT]
    assert (intent.status, intent.nonce) == ("signed", 0)
    assert _w3(anvil).eth.get_transaction_count(DEPLOYER, "pending") == 0  # signed, never broadcast
    assert not record.exists()

    _resume_and_check(anvil, record, _signed_hash(intents_db, TOKEN_INTENT))


def test_a_deploy_killed_while_its_transaction_waits_to_be_mined_resumes(anvil: Devnet, tmp_path: Path) -> None:
    w3 = _w3(anvil)
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    record = tmp_path / "record.json"
    worker = _worker(anvil, record)
    try:
        assert worker.stdout is not None
        intents_db = Path(worker.stdout.readline().strip())
        deadline = time.monotonic() + 60
        while w3.eth.get_transaction_count(DEPLOYER, "pending") == 0:
            assert worker.poll() is None, "the worker exited before sending its deploy"
            assert time.monotonic() < deadline, "the worker never sent its deploy"
            time.sleep(0.05)
    finally:
        worker.kill()
        worker.communicate(timeout=30)
    intent = _intents(intents_db)[TOKEN_INTENT]
    assert intent.status in ("signed", "sent")  # broadcast; "sent" may not have been committed before the kill
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]  # mined while nobody watches
    w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]

    _resume_and_check(anvil, record, _signed_hash(intents_db, TOKEN_INTENT))


def test_a_failed_step_raises_and_is_tried_again_under_a_new_intent(anvil: Devnet, tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    other = Web3.to_checksum_address(MINT_TO)
    with _deployer(anvil, path) as deployer:
        deployer.deploy("Token", "MockERC20", "Devnet Token", "TKN", 18)
        with pytest.raises(TransactionReverted, match="pull"):  # no allowance yet
            deployer.step("pull", "Token", "transferFrom", DEPLOYER, other, 1)
        assert deployer.record.steps == []
        deployer.step("fund", "Token", "mint", DEPLOYER, 1)
        deployer.step("allow", "Token", "approve", DEPLOYER, 1)
        assert deployer.step("pull", "Token", "transferFrom", DEPLOYER, other, 1) is not None
        assert deployer.step("pull", "Token", "transferFrom", DEPLOYER, other, 1) is None  # recorded once
        assert deployer.contract("Token").functions.balanceOf(other).call() == 1
        intents_db = deployer.intents_path
    assert intents_db is not None
    statuses = {key: row.status for key, row in _intents(intents_db).items() if "pull" in key}
    assert statuses == {"step:31337:pull": "failed", "step:31337:pull:retry-1": CONFIRMED}


@pytest.fixture
def other_anvil(anvil: Devnet) -> Iterator[Devnet]:
    """The same chain restarted: anvil's genesis has the start time, so wait for another second if needed."""
    genesis = _w3(anvil).eth.get_block(0)["hash"]
    while True:
        with fresh_anvil() as devnet:
            if _w3(devnet).eth.get_block(0)["hash"] != genesis:
                yield devnet
                return
        time.sleep(0.5)


def test_a_record_of_a_restarted_devnet_is_refused(anvil: Devnet, other_anvil: Devnet, tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    with _deployer(anvil, path) as deployer:
        deployer.deploy("Token", "MockERC20", "Devnet Token", "TKN", 18)
    with pytest.raises(ConfigurationError, match="genesis"):
        _deployer(other_anvil, path, DeploymentRecord.load(path))


def test_without_a_record_path_the_intents_live_in_a_temporary_file(anvil: Devnet) -> None:
    before = set(threading.enumerate())
    deployer = _deployer(anvil, None)
    address = deployer.deploy("Token", "MockERC20", "Devnet Token", "TKN", 18)
    assert deployer.deploy("Token", "MockERC20", "Devnet Token", "TKN", 18) == address
    assert _threads_left(before, within=0) != []  # the lifecycle's loop runs while the deployer is open
    deployer.close()
    assert _threads_left(before) == []
    assert _w3(anvil).eth.get_transaction_count(DEPLOYER) == 1
