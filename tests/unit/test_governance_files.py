"""``creditmesh admin``'s proposal and signature files: one of another shape (a list, a number where a list
belongs, an entry that is no object) is refused naming the file, not a TypeError traceback."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import cast

import pytest
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from api.cli._admin_proposals import PROPOSALS
from chain.deployment import DeployedContract, DeploymentRecord
from chain.safe import SafeError, SafeTransaction
from chain.signers import ProductionProfileRefused, devnet_account
from contracts.governance.catalog import CatalogError, GovernedCall, encode
from contracts.governance.parameters import batch_file, provider_id
from contracts.governance.service import GovernanceError, GovernedChain, load_proposals, load_signatures

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text", ["[]", '{"proposals": 5}', '{"proposals": [5]}', '{"signatures": [5]}', "{"])
def test_a_file_of_another_shape_is_refused_naming_it(text: str, tmp_path: Path) -> None:
    path = tmp_path / "file.json"
    path.write_text(text)
    loader = load_signatures if "signatures" in text else load_proposals
    with pytest.raises(GovernanceError, match=r"file\.json"):
        loader(path)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"contract": "CreditAggregator"}', "not a list of calls"),
        ("[5]", "not a list of calls"),
        ('[{"function": "setGracePeriod"}]', "0.contract: Field required"),
        ('[{"contract": "CreditAggregator", "function": "setGracePeriod", "args": 86400}]', "0.args"),
        ('[{"contract": "CreditAggregator", "function": "setGracePeriod", "gas": 1}]', "0.gas"),
        ("[", "not a list of calls"),
        ('[{"contract": "CreditAggregator", "function": "setThing", "args": ["0xzz"]}]', "'0xzz' is neither"),
    ],
)
def test_a_batch_file_of_another_shape_is_refused_naming_what_is_wrong(text: str, says: str, tmp_path: Path) -> None:
    """``admin propose batch FILE``: an object, a number, a call without its contract, args that are not a list, or
    a bytes argument that is not hex were KeyError, TypeError and ValueError tracebacks."""
    path = tmp_path / "batch.json"
    path.write_text(text)
    with pytest.raises(CatalogError, match=re.escape(says)):
        batch_file(path)


def test_a_batch_file_of_calls_is_read_with_addresses_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "batch.json"
    role, holder = "0x" + "ab" * 32, "0x" + "cd" * 20
    path.write_text(
        f"""[{{"contract": "CreditAggregator", "function": "setGracePeriod", "args": [86400]}},
            {{"contract": "CreditAggregator", "function": "grantRole", "args": ["{role}", "{holder}"]}}]"""
    )
    first, second = batch_file(path)(cast(GovernedChain, None))  # a file's calls are the same on every chain
    assert (first.key, first.function, first.args) == ("CreditAggregator", "setGracePeriod", (86400,))
    assert second.args == (bytes.fromhex("ab" * 32), to_checksum_address(holder))


def test_a_safe_transaction_said_to_be_a_delegatecall_is_refused(tmp_path: Path) -> None:
    """Its ``operation`` was never read: a file saying 1 (delegatecall) was signed as a CALL without a word."""
    safe_tx = {"safe": "0x" + "11" * 20, "chain_id": 31337, "to": "0x" + "22" * 20, "data": "0x", "nonce": 0}
    with pytest.raises(SafeError, match=r"operation 1: only a CALL \(0\) is signed"):
        SafeTransaction.from_json({**safe_tx, "operation": 1})
    assert SafeTransaction.from_json({**safe_tx, "operation": 0}) == SafeTransaction.from_json(safe_tx)


def test_a_batch_naming_a_devnet_account_is_refused_in_production_as_grant_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`grant`, `rotate` and `settlement-address` refuse a devnet account as the new holder in production; a batch
    file's grantRole of the same account was accepted (its arguments were never checked)."""
    path = tmp_path / "batch.json"
    devnet, real = devnet_account(7).address, to_checksum_address("0x" + "cd" * 20)
    calls = [
        {"contract": "CreditAggregator", "function": "setSettlementAddress", "args": ["0x" + "ab" * 32, real]},
        {"contract": "CreditAggregator", "function": "grantRole", "args": ["0x" + "55" * 32, devnet.lower()]},
        {"contract": "Safe", "function": "setOwners", "args": [[real, devnet]]},
    ]
    path.write_text(json.dumps(calls))
    monkeypatch.setenv("CREDITMESH_ENVIRONMENT", "production")
    grant = argparse.Namespace(role="guardian", holder=devnet)
    with pytest.raises(ProductionProfileRefused, match=r"governance account #1 .* anvil's public devnet"):
        PROPOSALS["grant"][2](grant)

    with pytest.raises(ProductionProfileRefused) as refused:
        PROPOSALS["batch"][2](argparse.Namespace(file=path))

    problems = " ".join(refused.value.problems)
    assert "batch call 2 (CreditAggregator.grantRole) argument 2" in problems
    assert "batch call 3 (Safe.setOwners) argument 1.2" in problems
    assert real not in problems
    monkeypatch.setenv("CREDITMESH_ENVIRONMENT", "local")
    assert len(batch_file(path)(cast(GovernedChain, None))) == 3


def _aggregator_record() -> DeploymentRecord:
    deployed = DeployedContract(artifact="CreditAggregator", address="0x" + "44" * 20, tx_hash="0x", block=1)
    return DeploymentRecord(
        chain_name="ethereum-local", chain_id=31337, profile="local", contracts={"CreditAggregator": deployed}
    )


@pytest.mark.parametrize(
    ("function", "args", "named"),
    [
        ("setGracePeriod", (-1,), "is outside uint"),
        ("setGracePeriod", (2**256,), "is outside uint"),
    ],
)
def test_an_integer_outside_its_abi_type_is_refused_naming_the_range(
    function: str, args: tuple[int, ...], named: str
) -> None:
    """web3 only says no function matches the arguments; the proposal names the argument, its type and range."""
    with pytest.raises(CatalogError, match=named) as refused:
        encode(_aggregator_record(), GovernedCall("CreditAggregator", function, args))
    assert str(args[0]) in str(refused.value)
    assert encode(_aggregator_record(), GovernedCall("CreditAggregator", "setGracePeriod", (86_400,))).data


def test_hex_that_is_not_32_bytes_is_refused_as_a_provider_id_not_hashed_as_a_name() -> None:
    full = "0x" + "ab" * 32
    assert provider_id(full) == bytes.fromhex("ab" * 32)
    assert provider_id("sim-bank") == keccak(text="sim-bank")
    with pytest.raises(CatalogError, match=r"31\.5 bytes, not 32"):
        provider_id(full[:-1])  # a digit lost in the paste
    with pytest.raises(CatalogError, match="1 bytes, not 32"):
        provider_id("0x12")
