"""``decode_revert`` on revert data that names a known error but does not carry its arguments: None, as for an error
no artifact declares. eth_abi's DecodingError is no ValueError: it escaped the relay's simulations, the pricing
reason of a position and the transaction manager's guard."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from aggregator.loans import unpriced_reason
from chain.relay import REVERT_ARTIFACTS, revert_of
from chain.revert import decode_revert

pytestmark = pytest.mark.unit

STALE_PRICE = keccak(text="StalePrice(address,uint256,uint256)")[:4]
FEED = "0x" + "ab" * 20
RELAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


def test_a_known_error_with_its_arguments_decodes() -> None:
    data = _hex(STALE_PRICE + encode(["address", "uint256", "uint256"], [FEED, 100, 200]))
    decoded = decode_revert(data, REVERT_ARTIFACTS)
    assert decoded is not None
    assert (decoded.name, decoded.args) == ("StalePrice", (FEED, 100, 200))


@pytest.mark.parametrize(
    "data",
    [
        _hex(STALE_PRICE + b"\x00" * 10),  # the audit's: selector, then ten bytes where three words belong
        _hex(STALE_PRICE + encode(["address", "uint256"], [FEED, 100])),  # a word short
        _hex(STALE_PRICE + b"\x01" * 96),  # an address word with non-zero padding
        "0x" + STALE_PRICE.hex() + "zz",  # not hex
        "0x123",  # an odd number of hex digits
    ],
    ids=["ten-bytes", "a-word-short", "bad-padding", "not-hex", "odd-length"],
)
def test_a_known_selector_whose_arguments_do_not_decode_is_none(data: str) -> None:
    assert decode_revert(data, REVERT_ARTIFACTS) is None
    assert decode_revert(data) is None


class _Node:
    """A node whose ``eth_call`` answers ``error`` (a revert) at a head that stays put."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error

    async def make_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        if method == "eth_blockNumber":
            return {"result": "0x5"}
        return {"error": self.error}


async def test_a_simulation_reverting_with_undecodable_arguments_is_a_revert_not_a_crash() -> None:
    request = {"from": RELAYER, "to": FEED, "data": "0x"}
    short = {"code": 3, "message": "execution reverted", "data": _hex(STALE_PRICE + b"\x00" * 10)}
    refused = await revert_of(_Node(short), request)
    assert refused is not None
    assert "execution reverted" in refused


def test_the_pricing_reason_of_an_undecodable_revert_names_no_error() -> None:
    said = unpriced_reason(_hex(STALE_PRICE + b"\x00" * 10))
    assert said.startswith("the CollateralManager refused to price it (reverted)")


ALLOWANCE = "ERC20: transfer amount exceeds allowance"


def test_a_require_string_decodes_as_error_string() -> None:
    data = _hex(bytes.fromhex("08c379a0") + encode(["string"], [ALLOWANCE]))
    decoded = decode_revert(data)  # in no artifact: Solidity's own, whatever contract reverted
    assert decoded is not None
    assert (decoded.name, decoded.args) == ("Error", (ALLOWANCE,))
    assert str(decoded) == f'Error("{ALLOWANCE}")'
    quoted = decode_revert(_hex(bytes.fromhex("08c379a0") + encode(["string"], ['say "no"'])))
    assert str(quoted) == 'Error("say \\"no\\"")'


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (0x01, "Panic(0x01: assert evaluates to false)"),
        (0x11, "Panic(0x11: arithmetic operation results in underflow or overflow)"),
        (0x12, "Panic(0x12: division by zero)"),
        (0x32, "Panic(0x32: array index is out of bounds)"),
        (0x99, "Panic(0x99: an unknown panic code)"),
    ],
)
def test_a_panic_names_its_code_and_what_it_means(code: int, said: str) -> None:
    decoded = decode_revert(_hex(bytes.fromhex("4e487b71") + encode(["uint256"], [code])), REVERT_ARTIFACTS)
    assert decoded is not None
    assert (decoded.name, decoded.args, str(decoded)) == ("Panic", (code,), said)


@pytest.mark.parametrize(
    "data",
    [
        None,  # no data at all
        "0x",  # a bare revert(), as WETH9 reverts
        "0x08c379",  # less than a selector
        "0x08c379a0",  # Error(string) without its string
        "0x08c379a0" + "00" * 31 + "20" + "00" * 31 + "05",  # a string of five bytes, none there
        _hex(bytes.fromhex("08c379a0") + encode(["bytes"], [b"\xff\xfe"])),  # not UTF-8
        "0x4e487b71" + "00" * 16,  # half a panic code
    ],
    ids=["none", "empty", "short-selector", "no-string", "short-string", "not-utf8", "half-a-code"],
)
def test_short_or_malformed_built_in_errors_are_none(data: str | None) -> None:
    assert decode_revert(data, REVERT_ARTIFACTS) is None


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            {
                "code": 3,
                "message": f"execution reverted: {ALLOWANCE}",
                "data": "0x08c379a0" + encode(["string"], [ALLOWANCE]).hex(),
            },
            f'Error("{ALLOWANCE}")',
        ),
        ({"code": 3, "message": "execution reverted", "data": "0x"}, "execution reverted"),  # WETH9's bare revert
        ({"code": -32000, "message": "execution reverted"}, "execution reverted"),
        ({"code": -32000, "message": "out of gas", "data": "0xdeadbeef"}, "out of gas"),  # an unknown selector
    ],
    ids=["error-string", "empty-data", "no-data", "unknown-selector"],
)
async def test_a_simulation_names_the_revert_or_the_nodes_message_never_a_dict(
    error: dict[str, Any], reason: str
) -> None:
    refused = await revert_of(_Node(error), {"from": RELAYER, "to": FEED, "data": "0x"})
    assert refused == reason
