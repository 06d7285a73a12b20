"""``make run`` keeps its chains (issue 17): an anvil started with a state directory comes back after a stop with the
blocks, balances and contracts of before; ``creditmesh reset`` forgets the local run's chains, records and keys, but
not while a run is using them."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from web3 import Web3

import api.cli.run
import api.local_platform
from api.cli import main as cli
from api.local_platform import local_chains
from chain.config import LOCAL_CHAINS
from chain.devnet import free_port, start_devnet
from chain.signers import devnet_account

pytestmark = pytest.mark.integration

CHAIN = LOCAL_CHAINS[0]

HOLDS_THE_DIRECTORY = """
import sys
from pathlib import Path
from api.cli.run import _data_dir_of_this_run
with _data_dir_of_this_run(Path(sys.argv[1])):
    print("held", flush=True)
    input()
"""


def test_a_devnet_with_a_state_directory_keeps_its_chain_across_restarts(tmp_path: Path) -> None:
    sender, receiver = devnet_account(18), devnet_account(19).address
    devnet = start_devnet(CHAIN, port=0, state_dir=tmp_path)
    try:
        w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
        before = w3.eth.get_balance(receiver)
        signed = sender.sign_transaction(
            {
                "to": receiver,
                "value": 12345,
                "gas": 21_000,
                "gasPrice": w3.eth.gas_price,
                "nonce": 0,
                "chainId": CHAIN.chain_id,
            }
        )
        receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
        height = w3.eth.block_number
    finally:
        devnet.stop()
    assert (tmp_path / f"{CHAIN.name}.json").exists()

    again = start_devnet(CHAIN, port=0, state_dir=tmp_path)
    try:
        w3 = Web3(Web3.HTTPProvider(again.rpc_url))
        assert w3.eth.get_balance(receiver) == before + 12345
        assert w3.eth.get_transaction_count(sender.address) == 1
        assert w3.eth.block_number >= height >= receipt["blockNumber"]
    finally:
        again.stop()


def test_a_kept_chain_is_its_records_chain_at_every_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """anvil writes another genesis block, stamped with the start's time, into a kept state file at every start and
    answers for block 0 with any of the copies: the deployments record, stamped with block 0's hash, used to be
    refused as another chain's at the first restart where block 0 was another copy, leaving only `creditmesh reset`
    (every loan, key and record gone). The chain is known by the genesis its block 1 was built on. Restarted at
    least three times, and until block 0 has been another copy at least once."""
    data, chain = tmp_path / "data", CHAIN.model_copy(update={"port": free_port()})
    for module in (api.local_platform, api.cli.run):
        monkeypatch.setattr(module, "LOCAL_CHAINS", (chain,))
    deployer = devnet_account(0).address
    with local_chains(data / "deployments", state_dir=data / "devnets") as first:
        deployed = first.deployments[chain.name]
        w3 = Web3(Web3.HTTPProvider(first.devnets[0].rpc_url))
        sent, head, first_block = w3.eth.get_transaction_count(deployer), w3.eth.block_number, w3.eth.get_block(1)
    restarts, another_block_0 = 0, 0
    while restarts < 3 or (another_block_0 == 0 and restarts < 12):
        time.sleep(1.1)  # another second: another genesis block in the state file
        with local_chains(data / "deployments", state_dir=data / "devnets") as again:
            restarts += 1
            kept = again.deployments[chain.name]
            w3 = Web3(Web3.HTTPProvider(again.devnets[0].rpc_url))
            assert (kept.genesis_hash, kept.contracts, kept.steps) == (
                deployed.genesis_hash,
                deployed.contracts,
                deployed.steps,
            )
            assert (w3.eth.get_transaction_count(deployer), w3.eth.block_number) == (sent, head)  # nothing redeployed
            assert w3.eth.get_block(1)["hash"] == first_block["hash"]
            another_block_0 += w3.eth.get_block(0)["hash"] != first_block["parentHash"]
    assert another_block_0, f"block 0 was its first copy at each of {restarts} restarts: nothing was tested"
    assert deployed.genesis_hash == first_block["parentHash"].to_0x_hex()
    assert len(list((data / "deployments").glob("*.intents.db"))) == 1  # the deployment's intents: one chain's


def test_reset_forgets_the_local_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    kept = [
        data / "devnets" / f"{CHAIN.name}.json",
        data / "deployments" / f"{CHAIN.name}.json",
        data / "creditmesh.db",
        data / "creditmesh.db-wal",
        data / "subject-keys.db",
        data / "demo-borrower.key",
    ]
    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    unrelated = data / "my-notes.txt"
    unrelated.write_text("mine")
    monkeypatch.setenv("CREDITMESH_DATA_DIR", str(data))
    cli(["reset"])
    assert [path for path in kept if path.exists()] == []
    assert unrelated.read_text() == "mine"


def test_reset_removes_nothing_outside_its_data_directory_or_outside_a_local_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key store or deployments named outside the data directory (a production deployment's, say) are another
    system's: reset used to remove them with the local run's state, and in production too."""
    data, elsewhere = tmp_path / "data", tmp_path / "production"
    inside = data / "devnets" / f"{CHAIN.name}.json"
    keys, records = elsewhere / "subject-keys.db", elsewhere / "deployments" / f"{CHAIN.name}.json"
    for path in (inside, keys, records):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    monkeypatch.setenv("CREDITMESH_DATA_DIR", str(data))
    monkeypatch.setenv("CREDITMESH_KEY_STORE_URL", f"sqlite:///{keys}")
    monkeypatch.setenv("CREDITMESH_DEPLOYMENTS_DIR", str(elsewhere / "deployments"))
    with pytest.raises(SystemExit, match="outside the data directory") as refused:
        cli(["reset"])
    assert str(keys) in str(refused.value.code)
    assert str(elsewhere / "deployments") in str(refused.value.code)
    assert all(path.exists() for path in (inside, keys, records)), "refused before anything was removed"

    monkeypatch.delenv("CREDITMESH_KEY_STORE_URL")
    monkeypatch.delenv("CREDITMESH_DEPLOYMENTS_DIR")
    monkeypatch.setenv("CREDITMESH_ENVIRONMENT", "production")
    with pytest.raises(SystemExit):  # production's own checks refuse the local settings first, or reset does
        cli(["reset"])
    assert inside.exists()


def test_a_data_directory_in_use_by_a_run_is_neither_run_nor_reset_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    records = [data / "deployments" / f"{CHAIN.name}.json", data / "creditmesh.db", data / "demo-borrower.key"]
    for path in records:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    monkeypatch.setenv("CREDITMESH_DATA_DIR", str(data))
    # another process holding the directory as a run does, for as long as it lives
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDS_THE_DIRECTORY, str(data)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        for command in (["run"], ["reset"]):  # a run without state files starts fresh: it would remove the records
            with pytest.raises(SystemExit) as ended:
                cli(command)
            assert ended.value.code == 1
            said = capsys.readouterr().err
            assert f"{data} is in use by a `creditmesh run` still going (pid {holder.pid}); stop it first" in said
            assert "Traceback" not in said
        assert [path for path in records if not path.exists()] == []
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    cli(["reset"])  # the kernel let go of the lock with the process, however it ended
    assert [path for path in records if path.exists()] == []


def test_a_kept_chain_its_records_were_not_made_on_is_refused_with_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data, chain = tmp_path / "data", CHAIN.model_copy(update={"port": free_port()})
    monkeypatch.setenv("CREDITMESH_DATA_DIR", str(data))
    for module in (api.local_platform, api.cli.run):
        monkeypatch.setattr(module, "LOCAL_CHAINS", (chain,))
    with local_chains(data / "deployments", state_dir=data / "devnets"):
        pass
    time.sleep(1.1)  # another second: another genesis block
    other = start_devnet(chain, port=0, state_dir=tmp_path / "other")
    other.stop()
    shutil.copy(tmp_path / "other" / f"{chain.name}.json", data / "devnets" / f"{chain.name}.json")

    with pytest.raises(SystemExit) as ended:
        cli(["run"])
    assert ended.value.code == 1
    said = capsys.readouterr()
    assert "the chains, records and keys of the last run, kept" in said.out
    assert f"deployments record {data / 'deployments' / chain.name}.json was made on another {chain.name}" in said.err
    assert "`creditmesh reset` (make reset) starts over" in said.err
    assert "Traceback" not in said.err
