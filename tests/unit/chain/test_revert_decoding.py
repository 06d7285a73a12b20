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
    """A node whose ``eth_call`` reverts with ``data`` at a head that stays put."""

    def __init__(self, data: str) -> None:
        self.data = data

    async def make_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        if method == "eth_blockNumber":
            return {"result": "0x5"}
        return {"error": {"code": 3, "message": "execution reverted", "data": self.data}}


async def test_a_simulation_reverting_with_undecodable_arguments_is_a_revert_not_a_crash() -> None:
    request = {"from": RELAYER, "to": FEED, "data": "0x"}
    refused = await revert_of(_Node(_hex(STALE_PRICE + b"\x00" * 10)), request)
    assert refused is not None
    assert "execution reverted" in refused


def test_the_pricing_reason_of_an_undecodable_revert_names_no_error() -> None:
    said = unpriced_reason(_hex(STALE_PRICE + b"\x00" * 10))
    assert said.startswith("the CollateralManager refused to price it (reverted)")
