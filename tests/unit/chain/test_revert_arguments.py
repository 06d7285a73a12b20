"""A decoded custom error as an operator reads it: bytes arguments (a Timelock operation id, its expected-states
bitmap) as 0x hex, not as Python's b'...' escapes."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from chain.revert import DecodedError, decode_revert

pytestmark = pytest.mark.unit

OPERATION_ID = bytes.fromhex("d23ce67acd67f14b8e052098f07f17e1ade95012e02a1ebbdfef6fd29793a21b")


def test_a_timelock_revert_shows_its_bytes32_arguments_as_hex() -> None:
    selector = keccak(text="TimelockUnexpectedOperationState(bytes32,bytes32)")[:4]
    data = "0x" + (selector + encode(["bytes32", "bytes32"], [OPERATION_ID, (4).to_bytes(32, "big")])).hex()
    decoded = decode_revert(data, ("TimelockController",))
    assert decoded is not None
    assert str(decoded) == (f"TimelockUnexpectedOperationState(0x{OPERATION_ID.hex()}, 0x{'00' * 31}04)")


def test_other_arguments_read_as_before_and_nested_bytes_as_hex() -> None:
    error = DecodedError("Mixed", (7, "text", "0xAbC", (b"\x01\x02", [b"\xff", 3]), True))
    assert str(error) == "Mixed(7, text, 0xAbC, (0x0102, [0xff, 3]), True)"
