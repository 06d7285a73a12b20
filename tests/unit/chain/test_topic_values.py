"""Indexed-argument topics are kept per (codec, type, value): the same hex as web3's codec, call after call, on random
wallets and numbers; equal values of another type are encoded for themselves; a refused value is refused every time."""

from __future__ import annotations

import random

import pytest
from eth_utils.address import to_checksum_address
from web3 import Web3

from chain.logs import _topic_value

pytestmark = pytest.mark.unit


def test_topics_are_the_codecs_on_random_values() -> None:
    codec = Web3().codec
    rng = random.Random(7)
    for _ in range(200):
        wallet = to_checksum_address(rng.randbytes(20))
        number = rng.randrange(2**256)
        for solidity_type, value in (("address", wallet), ("uint256", number), ("bytes32", rng.randbytes(32))):
            expected = f"0x{codec.encode([solidity_type], [value]).hex()}"
            assert _topic_value(codec, solidity_type, value) == expected
            assert _topic_value(codec, solidity_type, value) == expected, "again, kept"


def test_equal_values_of_another_type_and_refused_values() -> None:
    codec = Web3().codec
    assert _topic_value(codec, "bool", True) == "0x" + "00" * 31 + "01"
    with pytest.raises(Exception):  # noqa: B017, PT011 - the codec's own refusal, whatever its class
        _topic_value(codec, "bool", 1)
    for _ in range(2):
        with pytest.raises(Exception):  # noqa: B017, PT011
            _topic_value(codec, "address", "not an address")
