"""What a node's error answer to ``eth_getLogs`` means, for the readers that adapt to it (``chain.events``,
``chain.logs``): the query was too heavy — a range too wide, too many results, a query timeout — and a smaller range
may pass; or the caller went over its provider's rate limit, and the same query passes after a pause.

Providers word both freely, and loosely: "limit exceeded" can be either. A rate limit is recognised first, by
phrases that belong to one ("too many requests" is one, "too many results" is not) or its JSON-RPC code 429; any
other answer with a word of a heavy query ("range", "limit", "exceed", "too many", "too large", "timeout" …) is too
heavy — halving a range costs a few more calls, while missing a wording ("ranges over 10000 blocks are not
supported", "query exceeds max results", "context deadline exceeded") stopped the reader at that block for good. An
answer that is neither is a plain error of the query.
"""

from __future__ import annotations

from typing import Any

_RATE_LIMITS = (
    "rate limit",
    "rate-limit",
    "ratelimit",
    "rate limited",
    "request rate",
    "too many requests",
    "requests per second",
    "compute units",
    "request limit",
    "daily request",
    "throttl",
    "quota",
)
_TOO_HEAVY = (
    "block range",
    "blocks range",
    "range is too",
    "range too",
    "range limit",
    "max range",
    "maximum range",
    "too many blocks",
    "limited to a",
    "more than",
    "too many results",
    "too many logs",
    "log limit",
    "logs limit",
    "response size",
    "response is too",
    "timeout",
    "timed out",
    # the loose words: any other refusal that names them is taken as too heavy
    "range",
    "limit",
    "exceed",
    "too many",
    "too large",
    "max results",
    "deadline",
)
RATE_LIMIT_CODE = 429  # the JSON-RPC error code some providers answer a rate limit with (HTTP's Too Many Requests)


def _error_code(err: BaseException) -> int | None:
    """The JSON-RPC error code of a web3 error answer (``Web3RPCError.rpc_response``), if it carries one."""
    response: Any = getattr(err, "rpc_response", None)
    error = response.get("error") if isinstance(response, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) else None


def rate_limited(err: BaseException) -> bool:
    """Whether the node refused the call for the caller's rate (ask again after a pause, not with less)."""
    message = str(err).lower()
    return _error_code(err) == RATE_LIMIT_CODE or any(phrase in message for phrase in _RATE_LIMITS)


def range_too_wide(err: BaseException) -> bool:
    """Whether the node refused the query as too heavy (a smaller block range, or fewer addresses, may pass)."""
    message = str(err).lower()
    return not rate_limited(err) and any(phrase in message for phrase in _TOO_HEAVY)
