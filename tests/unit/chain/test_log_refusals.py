"""What a node's error answer to ``eth_getLogs`` means, on the wordings of real RPC providers: a rate limit (ask
again after a pause) is never taken for a query too heavy (read a smaller range), though both may say "limit" or
"exceeded"; an answer that is neither is a plain error."""

from __future__ import annotations

import pytest
from web3.exceptions import Web3RPCError
from web3.types import RPCError, RPCResponse

from chain.log_refusals import range_too_wide, rate_limited

pytestmark = pytest.mark.unit


def _answer(code: int, message: str) -> Web3RPCError:
    error: RPCError = {"code": code, "message": message}
    response: RPCResponse = {"jsonrpc": "2.0", "id": 1, "error": error}
    return Web3RPCError(str(error), rpc_response=response)


RATE_LIMITS = [
    (429, "Your app has exceeded its compute units per second capacity"),  # Alchemy
    (-32005, "project ID request rate exceeded"),  # Infura
    (-32005, "daily request count exceeded, request rate limited"),  # Infura
    (-32000, "Too Many Requests"),
    (-32090, "rate limit exceeded, retry in 1s"),
    (-32001, "You've exceeded the RPS limit available on the current plan: requests per second"),
]
TOO_HEAVY = [
    (-32005, "query returned more than 10000 results"),  # Infura
    (-32602, "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range"),  # Alchemy
    (-32000, "block range is too wide"),  # Erigon, Polygon
    (-32000, "exceed maximum block range: 5000"),  # BSC
    (-32614, "eth_getLogs is limited to a 10,000 range"),  # QuickNode
    (-32000, "query timeout exceeded"),  # geth
    # wordings no phrase above names, taken as too heavy by their loose words (a range halved is a few more calls;
    # missed, the reader stops at that block for good)
    (-32000, "context deadline exceeded"),
    (-32600, "ranges over 10000 blocks are not supported on freetier"),
    (-32005, "query exceeds max results 20000"),
    (-32005, "request exceeds defined limit"),
    (-32000, "backend response too large"),
]


@pytest.mark.parametrize(("code", "message"), RATE_LIMITS)
def test_a_rate_limit_is_no_range_too_wide(code: int, message: str) -> None:
    answer = _answer(code, message)
    assert rate_limited(answer)
    assert not range_too_wide(answer)


@pytest.mark.parametrize(("code", "message"), TOO_HEAVY)
def test_a_query_too_heavy_is_no_rate_limit(code: int, message: str) -> None:
    answer = _answer(code, message)
    assert range_too_wide(answer)
    assert not rate_limited(answer)


def test_the_json_rpc_code_429_is_a_rate_limit_whatever_its_words_and_other_answers_are_neither() -> None:
    assert rate_limited(_answer(429, "limit exceeded"))
    plain = _answer(-32602, "invalid argument 0: hex string without 0x prefix")
    assert not rate_limited(plain)
    assert not range_too_wide(plain)
