"""What ``creditmesh admin`` makes of its arguments: a settlement address proposed from a key, operation ids and
salts that are not 32 bytes of hex, ``--fork`` without ``--dry-run``, ``--out`` where no file is written, and a
proposal file submitted on some of its chains."""

from __future__ import annotations

import re

import pytest
from eth_utils.crypto import keccak

from chain.safe import read_safe, safe_contract
from chain.signers import devnet_account
from contracts.governance.service import Governance, GovernanceError, GovernedChain
from tests.contracts.harness import DEPLOYER
from tests.integration.governance.support import Admin
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.integration


def test_a_settlement_address_is_proposed_from_a_key(admin: Admin) -> None:
    """The positional account and the key's --account shared one dest: `--via key` crashed (the settlement account
    taken for a devnet index, or the key's index for the settlement account)."""
    chain = admin.chains["ethereum-local"]
    settlement = devnet_account(17).address

    propose = ("--chains", chain.name, "propose", "settlement-address", "sim-bank", settlement, "--via", "key")

    out = admin(*propose)
    with_key = admin(*propose, "--account", "0")

    provider = "0x" + keccak(text="sim-bank").hex()
    for proposed in (out, with_key):
        assert f"CreditAggregator.setSettlementAddress(providerId={provider}, account={settlement})" in proposed
        assert re.search(r"scheduled 0x[0-9a-f]{64}: tx 0x[0-9a-f]{64}", proposed)
    assert [row.proposer for row in admin.rows()] == [devnet_account(0).address] * 2


@pytest.mark.parametrize("operation_id", ["latest", "0x3f…", "0x" + "zz" * 32, "ab" * 32])
def test_an_operation_id_that_is_not_32_bytes_of_hex_is_refused_not_a_traceback(
    admin: Admin, operation_id: str
) -> None:
    """The parser refuses it on the command line; Governance.find refuses it too (a GovernanceError the command
    ends with in one line) rather than bytes.fromhex's ValueError."""
    chain = admin.chains["ethereum-local"]
    with pytest.raises(SystemExit) as parsed:
        admin("--chains", chain.name, "execute", operation_id)
    assert parsed.value.code == 2
    assert "is not 32 bytes of hex: 0x and 64 hex digits" in admin.capsys.readouterr().err
    governed = GovernedChain(chain.name, chain.w3, chain.record)
    with Governance([governed]) as governance, pytest.raises(GovernanceError, match="is not an operation id"):
        governance.find(governed, operation_id)


def test_fork_without_dry_run_is_refused_before_anything_is_proposed(admin: Admin) -> None:
    """`--fork` alone was ignored: the proposal was made for real, on the chain."""
    chain = admin.chains["ethereum-local"]
    sent = chain.w3.eth.get_transaction_count(DEPLOYER.address)

    with pytest.raises(SystemExit) as refused:
        admin("--chains", chain.name, "propose", "grace-period", "3600", "--via", "key", "--fork")

    assert "--fork goes with --dry-run only" in str(refused.value.code)
    assert chain.w3.eth.get_transaction_count(DEPLOYER.address) == sent
    assert "scheduled" not in admin.capsys.readouterr().out


@pytest.mark.parametrize(
    ("command", "refusal"),
    [
        (("propose", "grace-period", "3600", "--via", "key"), "--via key sends from the key and writes no file"),
        (("propose", "grace-period", "3600", "--dry-run"), "a dry run writes no proposal file"),
        (("cancel", "0x" + "ab" * 32, "--via", "key"), "--via key sends from the key and writes no file"),
    ],
)
def test_out_where_no_file_is_written_is_refused_before_anything_is_sent(
    admin: Admin, command: tuple[str, ...], refusal: str
) -> None:
    """`propose … --via key --out FILE` scheduled the operation and wrote no file, silently (so did `cancel --via key`
    and a dry run): --out is the Safe path's file."""
    chain = admin.chains["ethereum-local"]
    sent = chain.w3.eth.get_transaction_count(DEPLOYER.address)
    out = admin.tmp / "never.json"

    with pytest.raises(SystemExit) as refused:
        admin("--chains", chain.name, *command, "--out", str(out))

    assert refusal in str(refused.value.code)
    assert f"--out {out}" in str(refused.value.code)
    assert chain.w3.eth.get_transaction_count(DEPLOYER.address) == sent
    assert not out.exists()


def test_a_proposal_file_is_submitted_on_the_chains_named(admin: Admin) -> None:
    """A proposal for every chain submitted with --chains naming one was refused as a whole ("unknown chain")."""
    proposal = admin.tmp / "grace.json"
    admin("propose", "grace-period", "86400", "--out", str(proposal))
    signatures = [str(admin.tmp / f"{owner}.json") for owner in (12, 13)]
    for owner, path in zip((12, 13), signatures, strict=True):
        admin("sign", str(proposal), "--account", str(owner), "--out", path)

    out = admin("--chains", "polygon-local", "submit", str(proposal), *signatures)

    assert re.findall(r"\[(\S+)\] Safe scheduled 0x[0-9a-f]{64}", out) == ["polygon-local"]
    assert "[ethereum-local] not submitted: not among --chains" in out
    assert {name: _safe_nonce(chain) for name, chain in admin.chains.items()} == {
        "ethereum-local": 0,
        "polygon-local": 1,
        "arbitrum-local": 0,
    }
    rest = admin("--chains", "ethereum-local,arbitrum-local", "submit", str(proposal), *signatures)
    assert sorted(re.findall(r"\[(\S+)\] Safe scheduled 0x[0-9a-f]{64}", rest)) == ["arbitrum-local", "ethereum-local"]
    assert sorted(row.chain_name for row in admin.rows()) == ["arbitrum-local", "ethereum-local", "polygon-local"]
    elsewhere = admin.tmp / "ethereum.json"
    admin("--chains", "ethereum-local", "propose", "grace-period", "3600", "--out", str(elsewhere))
    refused = admin.refused("--chains", "polygon-local", "submit", str(elsewhere), *signatures)
    assert f"{elsewhere} has no proposal for --chains polygon-local: nothing was sent" in refused


def _safe_nonce(chain: DeployedChain) -> int:
    return read_safe(safe_contract(chain.w3, chain.record.address("Safe"))).nonce
