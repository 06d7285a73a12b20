"""The event decoder's own layouts (static elementary arguments decoded straight with the codec) give what web3's
``get_event_data`` gives, for every event of every contract the ledger watches, on random arguments."""

from __future__ import annotations

import random
from typing import Any, cast

import pytest
from eth_abi.abi import encode
from eth_abi.grammar import BasicType, parse
from eth_typing import ABIEvent
from eth_utils.abi import event_abi_to_log_topic
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.types import LogReceipt

from aggregator.ledger import WATCHED_ARTIFACTS
from chain.artifacts import load_artifact
from chain.events import EventDecoder, WatchedContract

pytestmark = pytest.mark.unit


def _value(kind: str, rng: random.Random) -> Any:
    parsed = parse(kind)
    assert isinstance(parsed, BasicType)
    if parsed.base == "bool":
        return rng.random() < 0.5
    if parsed.base == "address":
        return to_checksum_address(rng.randbytes(20))
    if parsed.base == "bytes":
        return rng.randbytes(int(parsed.sub))
    bits = int(parsed.sub)
    return rng.randrange(-(2 ** (bits - 1)), 2 ** (bits - 1)) if parsed.base == "int" else rng.randrange(2**bits)


def _log(address: str, abi: dict[str, Any], rng: random.Random) -> LogReceipt:
    inputs = abi["inputs"]
    values = [_value(item["type"], rng) for item in inputs]
    topics = [event_abi_to_log_topic(cast(ABIEvent, abi))]
    topics += [encode([item["type"]], [v]) for item, v in zip(inputs, values, strict=True) if item["indexed"]]
    unindexed = [(item["type"], v) for item, v in zip(inputs, values, strict=True) if not item["indexed"]]
    entry = {
        "address": address,
        "topics": [HexBytes(topic) for topic in topics],
        "data": HexBytes(encode([kind for kind, _ in unindexed], [v for _, v in unindexed])),
        "blockNumber": rng.randrange(1, 10**7),
        "blockHash": HexBytes(rng.randbytes(32)),
        "transactionHash": HexBytes(rng.randbytes(32)),
        "transactionIndex": rng.randrange(100),
        "logIndex": rng.randrange(1000),
    }
    return cast(LogReceipt, entry)


def test_every_watched_event_decodes_through_its_layout_as_through_web3() -> None:
    rng = random.Random(1808)
    fast, web3_only = EventDecoder(Web3().codec), EventDecoder(Web3().codec)
    laid_out = 0
    for n, artifact in enumerate(WATCHED_ARTIFACTS):
        address = to_checksum_address(bytes([n + 1]) * 20)
        for decoder in (fast, web3_only):
            decoder.add(WatchedContract(artifact, address, artifact))
        web3_only.layouts.clear()  # every event through get_event_data
        for abi in load_artifact(artifact).abi:
            if abi.get("type") != "event" or abi.get("anonymous"):
                continue
            if fast.layouts[(address.lower(), event_abi_to_log_topic(cast(ABIEvent, abi)))] is None:
                continue  # a tuple, array or dynamic argument: web3 decodes it in both
            laid_out += 1
            for _ in range(5):
                entry = _log(address, abi, rng)
                found = fast.decode(31337, entry)
                assert found is not None
                assert found == web3_only.decode(31337, entry)
                assert found.event == abi["name"]
    assert laid_out >= 30  # the ledger's events among them (LoanOpened, LoanRepaid, CollateralAdded …)


def test_a_log_whose_topics_do_not_fit_its_event_is_refused_as_web3_refuses_it() -> None:
    decoder = EventDecoder(Web3().codec)
    address = to_checksum_address("0x" + "a1" * 20)
    decoder.add(WatchedContract("CreditAggregator", address, "CreditAggregator"))
    (opened,) = [item for item in load_artifact("CreditAggregator").abi if item.get("name") == "LoanOpened"]
    entry = _log(address, opened, random.Random(7))
    short = cast(LogReceipt, dict(entry) | {"topics": entry["topics"][:-1]})
    with pytest.raises(Exception, match="topic"):
        decoder.decode(31337, short)
