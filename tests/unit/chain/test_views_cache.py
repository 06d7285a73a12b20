"""Pre-encoded views keep their calldata and decoded answers: the same bytes and values as eth-abi's, call after
call, on random arguments and answers; arguments equal but of another type (True and 1) are not confused."""

from __future__ import annotations

import random

import pytest
from eth_abi.abi import decode, encode
from eth_abi.exceptions import EncodingError

from chain.views import View, view

pytestmark = pytest.mark.unit


def test_calldata_and_answers_are_eth_abis_on_random_values() -> None:
    rng = random.Random(12)
    rate = view("LendingPool", "modelRateBps")
    liquidity = view("LendingPool", "availableLiquidity")
    for _ in range(200):
        principal = rng.choice([rng.randrange(2**256), rng.randrange(10**12), 1_500 * 10**6])
        expected = "0x" + (rate.selector + encode(list(rate.inputs), [principal])).hex()
        assert rate.calldata(principal) == expected
        assert rate.calldata(principal) == expected, "again, from the kept encoding"
        answer = "0x" + encode(["uint256"], [rng.randrange(2**256)]).hex()
        assert liquidity.decode(answer) == decode(["uint256"], bytes.fromhex(answer[2:]))[0]
        assert liquidity.decode(answer) == decode(["uint256"], bytes.fromhex(answer[2:]))[0]
    assert liquidity.calldata() == "0x" + liquidity.selector.hex()


def test_equal_arguments_of_another_type_are_encoded_for_themselves() -> None:
    flag = View("flag", b"\x12\x34\x56\x78", ("bool",), ("bool",))
    assert flag.calldata(True) == "0x12345678" + "00" * 31 + "01"
    with pytest.raises(EncodingError):
        flag.calldata(1)  # eth-abi refuses an int for a bool, kept True or not
    pair = View("pair", b"\x00\x00\x00\x01", ("uint256[]",), ("uint256",))
    assert pair.calldata([1, 2]) == "0x00000001" + encode(["uint256[]"], [[1, 2]]).hex(), "a list is not a key"
