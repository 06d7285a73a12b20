"""One-shot log queries: the decoded events of one contract up to a block the caller pinned.

``EventReader`` (``chain.events``) follows contracts continuously, with checkpoints and reorg handling; this is
its small sibling for a single read on the request path (a wallet's loans, say): ``eth_getLogs`` filtered by
event and indexed arguments, over block ranges of at most ``max_range`` blocks. A range the node refuses as too
heavy (too many results, range too wide, query timeout: ``chain.log_refusals``; a rate limit is not) is halved and
retried, a range that passes lets the next one double again up to ``max_range``. Every ``eth_getLogs`` call has its
own ``call_timeout``; a call that runs out of it, or a node that refuses even a single block, raises
``LogQueryError``. An outage raises the client's ``RpcUnavailable``. Both are ``ChainError``\\ s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_abi.codec import ABICodec
from eth_typing import ChecksumAddress
from eth_utils.abi import event_abi_to_log_topic
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3._utils.events import get_event_data
from web3.exceptions import Web3Exception
from web3.types import FilterParams, LogReceipt

from chain.client import ChainClient
from chain.errors import ChainError, RpcUnavailable
from chain.log_refusals import range_too_wide

DEFAULT_MAX_RANGE = 10_000  # blocks; what common RPC providers accept per eth_getLogs call
DEFAULT_CALL_TIMEOUT = 10.0  # seconds per eth_getLogs call
_STATIC_TOPIC_TYPES = ("address", "bool", "uint", "int", "bytes")


class LogQueryError(ChainError):
    """A log query could not be answered: a bad filter, a call over its timeout, or a node refusing one block."""


@dataclass(frozen=True, slots=True)
class DecodedLog:
    event: str
    args: dict[str, Any]
    address: ChecksumAddress
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


async def fetch_logs(
    client: ChainClient,
    address: ChecksumAddress,
    abi: Sequence[Mapping[str, Any]],
    event_name: str | Sequence[str],
    argument_filters: Mapping[str, Any] | None = None,
    *,
    from_block: int,
    to_block: int,
    max_range: int = DEFAULT_MAX_RANGE,
    call_timeout: float = DEFAULT_CALL_TIMEOUT,
) -> list[DecodedLog]:
    """The events ``event_name`` of the contract at ``address`` in blocks ``from_block``..``to_block``, in chain
    order.

    Args:
        event_name: one event, or several that share the filtered indexed arguments at the same positions
            (``LoanClosed`` and ``LoanDefaulted`` by ``loanId``): one ``eth_getLogs`` per range reads them all.
        argument_filters: indexed argument name → a value, or a list of values any of which matches. An empty
            list matches nothing (no call is made). Only static types (address, uintN, bytesN, bool) are supported.
    """
    names = (event_name,) if isinstance(event_name, str) else tuple(event_name)
    events = [_event_abi(abi, name) for name in names]
    topics = _topics(client, events, dict(argument_filters or {}))
    if topics is None or from_block > to_block:
        return []
    by_topic = {_event_topic(event): event for event in events}
    found: list[DecodedLog] = []
    span = max(1, max_range)
    start = from_block
    while start <= to_block:
        end = min(start + span - 1, to_block)
        # raw JSON-RPC (ChainClient.rpc), not web3's request pipeline and result formatters: this runs on every
        # credit request for every chain; the entries are shaped as web3 would (_receipt) for its event decoder
        params = {"address": address, "fromBlock": hex(start), "toBlock": hex(end), "topics": topics}
        try:
            async with asyncio.timeout(call_timeout):
                entries = await client.rpc("eth_getLogs", params)
        except TimeoutError as err:
            raise LogQueryError(f"{client.name}: eth_getLogs {start}-{end} took over {call_timeout} s") from err
        except RpcUnavailable:
            raise
        except (ChainError, Web3Exception, ValueError) as err:  # the node's error answer
            if span > 1 and range_too_wide(err):
                span = max(1, span // 2)
                continue
            raise LogQueryError(f"{client.name}: eth_getLogs {start}-{end} failed: {err}") from err
        try:
            found.extend(_decode(client, by_topic, _receipt(entry)) for entry in entries)
        except (TypeError, KeyError, ValueError) as err:
            raise LogQueryError(f"{client.name}: eth_getLogs {start}-{end} answered an unexpected shape") from err
        start = end + 1
        span = min(max_range, span * 2)
    return found


@dataclass(frozen=True, slots=True)
class LogsRequest:
    """One ``eth_getLogs`` over a whole block range, for a caller that sends it in a JSON-RPC batch of its own
    (``ChainClient.batch``): ``params`` to send, ``decode`` for the answer. No adaptive ranges: a caller falls back
    to ``fetch_logs`` when the node refuses it."""

    client: ChainClient
    params: dict[str, Any]
    by_topic: dict[bytes, dict[str, Any]]

    def decode(self, entries: Any) -> list[DecodedLog]:
        try:
            return [_decode(self.client, self.by_topic, _receipt(entry)) for entry in entries]
        except (TypeError, KeyError, ValueError) as err:
            raise LogQueryError(f"{self.client.name}: eth_getLogs answered an unexpected shape") from err


def logs_request(
    client: ChainClient,
    address: ChecksumAddress,
    abi: Sequence[Mapping[str, Any]],
    event_name: str | Sequence[str],
    argument_filters: Mapping[str, Any] | None = None,
    *,
    from_block: int,
    to_block: int,
) -> LogsRequest | None:
    """``fetch_logs``' query as one request over ``from_block``..``to_block``; None when it matches nothing."""
    names = (event_name,) if isinstance(event_name, str) else tuple(event_name)
    events = [_event_abi(abi, name) for name in names]
    topics = _topics(client, events, dict(argument_filters or {}))
    if topics is None or from_block > to_block:
        return None
    params = {"address": address, "fromBlock": hex(from_block), "toBlock": hex(to_block), "topics": topics}
    return LogsRequest(client, params, {_event_topic(event): event for event in events})


async def fetch_raw_logs(
    client: ChainClient,
    addresses: Sequence[ChecksumAddress],
    *,
    from_block: int,
    to_block: int,
    max_range: int = DEFAULT_MAX_RANGE,
    call_timeout: float = DEFAULT_CALL_TIMEOUT,
    progress: Callable[[int], None] | None = None,
) -> list[LogReceipt]:
    """Every log of ``addresses`` in blocks ``from_block``..``to_block``, undecoded, in chain order — whatever their
    topic (an auditor's read: what no ABI knows is reported, not dropped). Same adaptive ranges and errors as
    ``fetch_logs``, except that a range whose call runs out of ``call_timeout`` is halved too (only a single block
    over it raises). ``progress`` is called with the last block read after each range."""
    found: list[LogReceipt] = []
    span = max(1, max_range)
    start = from_block
    while start <= to_block and addresses:
        end = min(start + span - 1, to_block)
        params: FilterParams = {"address": list(addresses), "fromBlock": start, "toBlock": end}
        try:
            async with asyncio.timeout(call_timeout):
                entries = await client.w3.eth.get_logs(params)
        except TimeoutError as err:
            if span > 1:  # dense blocks: a range too heavy to answer in time is halved like a refused one
                span = max(1, span // 2)
                continue
            raise LogQueryError(f"{client.name}: eth_getLogs {start}-{end} took over {call_timeout} s") from err
        except RpcUnavailable:
            raise
        except (Web3Exception, ValueError) as err:
            if span > 1 and range_too_wide(err):
                span = max(1, span // 2)
                continue
            raise LogQueryError(f"{client.name}: eth_getLogs {start}-{end} failed: {err}") from err
        found.extend(entries)
        if progress is not None:
            progress(end)
        start = end + 1
        span = min(max_range, span * 2)
    return found


#: event topics by (name, inputs' types): the request path reads the same few events on every credit request, and
#: each topic costs an ABI signature and a keccak
_TOPICS: dict[tuple[str, str], bytes] = {}


def _event_topic(event: dict[str, Any]) -> bytes:
    key = (str(event["name"]), repr([(item["type"], item.get("components")) for item in event["inputs"]]))
    topic = _TOPICS.get(key)
    if topic is None:
        topic = _TOPICS[key] = bytes(event_abi_to_log_topic(event))  # type: ignore[arg-type]
    return topic


def _event_abi(abi: Sequence[Mapping[str, Any]], name: str) -> dict[str, Any]:
    for item in abi:
        if item.get("type") == "event" and item.get("name") == name and not item.get("anonymous"):
            return dict(item)
    raise LogQueryError(f"the ABI has no event {name!r}")


def _topics(client: ChainClient, events: Sequence[dict[str, Any]], filters: dict[str, Any]) -> list[Any] | None:
    """``[[signature, …], position 1, position 2, position 3]``; None when a filter's value list is empty."""
    topics: list[Any] = [[f"0x{_event_topic(event).hex()}" for event in events]]
    for name, wanted in filters.items():
        values = list(wanted) if isinstance(wanted, (list, tuple, set, frozenset)) else [wanted]
        if not values:
            return None
        positions = {_indexed_position(event, name) for event in events}
        if len(positions) != 1:
            raise LogQueryError(f"indexed argument {name!r} is not at one position in every event asked for")
        position, solidity_type = positions.pop()
        if solidity_type == "bytes" or "[" in solidity_type or not solidity_type.startswith(_STATIC_TOPIC_TYPES):
            raise LogQueryError(f"filtering on {solidity_type} argument {name!r} is not supported")
        while len(topics) <= position:
            topics.append(None)
        topics[position] = [_topic_value(client.w3.codec, solidity_type, value) for value in values]
    return topics


def _topic_value(codec: ABICodec, solidity_type: str, value: Any) -> str:
    """An indexed argument's topic, kept per (codec, type, value with its type): a wallet's history asks for the
    same wallet's topics request after request, and web3's codec validates and encodes it anew (an ENS-name check
    included) every time. A value that cannot be a key (a list) is encoded every time."""
    try:
        return _kept_topic_value(codec, solidity_type, type(value).__qualname__, value)
    except TypeError:
        return f"0x{codec.encode([solidity_type], [value]).hex()}"


@lru_cache(maxsize=4096)
def _kept_topic_value(codec: ABICodec, solidity_type: str, value_type: str, value: Any) -> str:
    return f"0x{codec.encode([solidity_type], [value]).hex()}"


def _indexed_position(event: dict[str, Any], name: str) -> tuple[int, str]:
    indexed = [item for item in event["inputs"] if item.get("indexed")]
    for position, item in enumerate(indexed, start=1):
        if item["name"] == name:
            return position, str(item["type"])
    raise LogQueryError(f"event {event['name']} has no indexed argument {name!r}")


def _receipt(raw: dict[str, Any]) -> LogReceipt:
    """A raw ``eth_getLogs`` entry as web3's formatters would give it (hashes as bytes, quantities as int)."""
    receipt = dict(raw)
    receipt["topics"] = [HexBytes(topic) for topic in raw["topics"]]
    receipt["data"] = HexBytes(raw["data"])
    receipt["blockHash"] = HexBytes(raw["blockHash"])
    receipt["transactionHash"] = HexBytes(raw["transactionHash"])
    for quantity in ("blockNumber", "logIndex", "transactionIndex"):
        receipt[quantity] = int(raw[quantity], 16)
    return receipt  # type: ignore[return-value]


def _decode(client: ChainClient, by_topic: dict[bytes, dict[str, Any]], entry: LogReceipt) -> DecodedLog:
    data = get_event_data(client.w3.codec, by_topic[bytes(entry["topics"][0])], entry)
    return DecodedLog(
        event=str(data["event"]),
        args=dict(data["args"]),
        address=to_checksum_address(entry["address"]),
        block_number=int(entry["blockNumber"]),
        block_hash=entry["blockHash"].to_0x_hex(),
        tx_hash=entry["transactionHash"].to_0x_hex(),
        log_index=int(entry["logIndex"]),
    )
