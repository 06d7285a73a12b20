"""``FailoverProvider`` encodes its JSON-RPC requests and batches to exactly web3's bytes (the same fields, ids and
separators): plain JSON params by the standard library's encoder, anything else (bytes, ``AttributeDict``) by web3's
own encoder, as before."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hexbytes import HexBytes
from web3.datastructures import AttributeDict
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.types import RPCEndpoint

from chain.client import FailoverProvider

pytestmark = pytest.mark.unit


def _providers() -> tuple[FailoverProvider, FailoverProvider]:
    """Ours, and another with a fresh counter of its own whose requests web3's encoder makes."""
    return FailoverProvider(["http://127.0.0.1:9"], 31337), FailoverProvider(["http://127.0.0.1:9"], 31337)


def _plain(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return hex(rng.randrange(2**256))
    if kind == 1:
        return rng.choice([0, 1, -5, 2**63 - 1, 2**200, True, False, None, 1.5])
    if kind == 2:
        return rng.choice(["latest", "pending", "", "naïve ünïcode", 'quote " and \\ backslash', "\u2028"])
    if kind == 3:
        return "0x" + "".join(rng.choice("0123456789abcdefABCDEF") for _ in range(40))
    if kind in (4, 5):
        return [_plain(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{i}": _plain(rng, depth + 1) for i in range(rng.randrange(4))}


def test_plain_params_encode_to_web3s_bytes() -> None:
    ours, web3s = _providers()
    rng = random.Random(18)
    for _ in range(300):
        method = RPCEndpoint(rng.choice(["eth_getLogs", "eth_call", "eth_getBlockByNumber", "eth_chainId"]))
        params = [_plain(rng) for _ in range(rng.randrange(4))]
        assert ours.encode_rpc_request(method, params) == AsyncJSONBaseProvider.encode_rpc_request(
            web3s, method, params
        )


def test_a_batch_encodes_to_web3s_bytes() -> None:
    ours, web3s = _providers()
    batch = [
        (RPCEndpoint("eth_getBlockByNumber"), ["latest", False]),
        (RPCEndpoint("eth_getTransactionCount"), ["0x" + "ab" * 20, "latest"]),
        (RPCEndpoint("eth_getLogs"), [{"address": "0x" + "cd" * 20, "fromBlock": "0x1", "topics": [None, "0x00"]}]),
    ]
    expected = b"[" + b", ".join(AsyncJSONBaseProvider.encode_rpc_request(web3s, m, p) for m, p in batch) + b"]"
    assert ours.encode_batch_rpc_request(batch) == expected


def test_params_only_web3_can_encode_still_encode_as_web3_does() -> None:
    ours, web3s = _providers()
    for params in (
        [HexBytes("0xdeadbeef"), "latest"],
        [{"data": b"\x01\x02"}],
        [AttributeDict({"to": "0x" + "ef" * 20, "value": 1})],
    ):
        encoded = ours.encode_rpc_request(RPCEndpoint("eth_call"), params)
        assert encoded == AsyncJSONBaseProvider.encode_rpc_request(web3s, RPCEndpoint("eth_call"), params)
    assert b'"0xdeadbeef"' in ours.encode_rpc_request(RPCEndpoint("eth_call"), [HexBytes("0xdeadbeef")])
