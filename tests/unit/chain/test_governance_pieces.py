"""Pure pieces of governance in ``chain/``: timelock operation ids, Safe signature packing, bytecode masking."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain.artifacts import Artifact
from chain.safe import (
    OwnerSignature,
    SafeSignatureError,
    SafeTransaction,
    pack_signatures,
    sign_safe_transaction,
)
from chain.signers import DEVNET_SAFE_OWNER_INDEXES, LocalSigner, devnet_account
from chain.timelock import TimelockCall, TimelockError, TimelockOperation
from chain.verification import compare_code

pytestmark = pytest.mark.unit

TARGET = to_checksum_address("0x" + "11" * 20)
OTHER = to_checksum_address("0x" + "22" * 20)
SALT = keccak(text="salt")
OWNERS = [LocalSigner(devnet_account(index)) for index in DEVNET_SAFE_OWNER_INDEXES]
STRANGER = LocalSigner(devnet_account(9))
TX = SafeTransaction(safe=OTHER, chain_id=31337, to=TARGET, data=b"\x12\x34", nonce=3)


def test_one_call_has_openzeppelins_hash_operation_id() -> None:
    operation = TimelockOperation((TimelockCall(TARGET, b"\xab", 5),), salt=SALT)
    expected = keccak(
        encode(["address", "uint256", "bytes", "bytes32", "bytes32"], [TARGET, 5, b"\xab", bytes(32), SALT])
    )
    assert not operation.batch
    assert operation.operation_id == expected


def test_a_batch_has_hash_operation_batch_id_and_a_batch_of_one_differs_from_one_call() -> None:
    calls = (TimelockCall(TARGET, b"\x01"), TimelockCall(OTHER, b"\x02"))
    expected = keccak(
        encode(
            ["address[]", "uint256[]", "bytes[]", "bytes32", "bytes32"],
            [[TARGET, OTHER], [0, 0], [b"\x01", b"\x02"], bytes(32), SALT],
        )
    )
    assert TimelockOperation(calls, salt=SALT).operation_id == expected
    single = TimelockOperation(calls[:1], salt=SALT)
    assert replace(single, as_batch=True).operation_id != single.operation_id


def test_an_operation_needs_a_call() -> None:
    with pytest.raises(TimelockError):
        TimelockOperation(())


def test_signatures_are_packed_in_owner_order_from_any_order() -> None:
    signed = [sign_safe_transaction(TX, owner) for owner in OWNERS[:2]]
    packed = pack_signatures(TX, reversed(signed), [o.address for o in OWNERS], threshold=2)
    ordered = sorted(signed, key=lambda s: int(s.owner, 16))
    assert packed == ordered[0].signature + ordered[1].signature
    assert all(TX.signer_of(s.signature) == s.owner for s in signed)


def test_fewer_than_the_threshold_are_refused() -> None:
    signed = [sign_safe_transaction(TX, OWNERS[0])] * 2  # the same owner twice counts once
    with pytest.raises(SafeSignatureError, match="needs 2 owners' signatures, got 1"):
        pack_signatures(TX, signed, [o.address for o in OWNERS], threshold=2)


def test_a_non_owner_and_a_forged_claim_are_refused() -> None:
    owners = [o.address for o in OWNERS]
    with pytest.raises(SafeSignatureError, match="is not an owner"):
        pack_signatures(TX, [sign_safe_transaction(TX, STRANGER)], owners, threshold=1)
    forged = OwnerSignature(TX, OWNERS[0].address, sign_safe_transaction(TX, STRANGER).signature)
    with pytest.raises(SafeSignatureError, match="was made by"):
        pack_signatures(TX, [forged], owners, threshold=1)


def test_a_signature_of_another_transaction_is_refused() -> None:
    other = sign_safe_transaction(replace(TX, nonce=4), OWNERS[0])
    with pytest.raises(SafeSignatureError, match="another SafeTx"):
        pack_signatures(TX, [other], [o.address for o in OWNERS], threshold=1)


def test_signature_files_round_trip(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "owner.json"
    signed = sign_safe_transaction(TX, OWNERS[1])
    signed.save(path)
    assert OwnerSignature.load(path) == signed


def _artifact(code: str, refs: tuple[tuple[int, int], ...]) -> Artifact:
    return Artifact("X", [], "0x", code, {}, refs)


def test_immutables_are_masked_and_other_bytes_compared() -> None:
    artifact = _artifact("0x6000" + "00" * 4 + "f3", ((2, 4),))
    assert compare_code(bytes.fromhex("6000" + "deadbeef" + "f3"), artifact) is None
    assert (
        compare_code(bytes.fromhex("6001" + "deadbeef" + "f3"), artifact)
        == "code differs from byte 1 (immutables masked)"
    )
    assert "bytes on chain" in str(compare_code(bytes.fromhex("6000"), artifact))
