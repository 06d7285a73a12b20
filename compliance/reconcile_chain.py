"""The reconciler's own read of one chain: every log of our contracts in a block range with ``eth_getLogs``
(``chain.logs.fetch_raw_logs``), decoded with the exported ABIs, and the runtime code at each of our addresses
compared with its artifact (``chain.verification``). Independent of the indexer and the ledger: nothing here reads
the database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import cast

from eth_typing import ABIEvent, HexStr
from eth_utils.abi import event_abi_to_log_topic
from eth_utils.address import to_checksum_address
from web3.types import LogReceipt

from chain.artifacts import DEFAULT_ARTIFACTS_DIR, load_artifact
from chain.client import ChainClient
from chain.deployment import DeploymentRecord, registered_pool_key
from chain.events import EventDecoder, WatchedContract
from chain.logs import fetch_logs, fetch_raw_logs
from chain.verification import compare_code
from compliance.reconcile import SENT_BY_EVENTS, ChainScope, CodeFinding, Fact, TxParties

# The platform's own contracts, whose every log is reconciled (tokens and feeds are other parties' contracts on a
# real chain; the Safe's owners act through the Timelock, which is reconciled).
RECONCILED_ARTIFACTS = (
    "CreditAggregator",
    "CollateralManager",
    "LendingPool",
    "CreditScoringOracle",
    "TimelockController",
    "AuditAnchor",
)


@cache
def known_topics() -> frozenset[bytes]:
    """The topic of every event in every exported ABI."""
    topics: set[bytes] = set()
    for path in DEFAULT_ARTIFACTS_DIR.glob("*.json"):
        for item in json.loads(path.read_text()).get("abi", []):
            if item.get("type") == "event" and not item.get("anonymous"):
                topics.add(bytes(event_abi_to_log_topic(item)))
    return frozenset(topics)


@dataclass(frozen=True, slots=True)
class ChainRead:
    """One chain's logs as read, and the code findings; ``facts()`` decodes the logs. Reading is I/O and runs for
    every chain at once; decoding is CPU (about as much as the whole match) and runs after, in the caller's thread:
    decoded inside the read, one chain's logs held the event loop so long that the other chains' ``eth_getLogs``
    calls ran out of their timeout and were read again in halves (10,000 loans: 165 s against 69 s for the raw
    read)."""

    scope: ChainScope
    code: list[CodeFinding]
    logs: list[LogReceipt]
    decoder: EventDecoder
    names: dict[str, str]
    #: the sender and recipient of each transaction holding one of ``SENT_BY_EVENTS`` (by hash, lower case): who
    #: scheduled an operation, who paused — events that do not all name them
    senders: dict[str, TxParties] = field(default_factory=dict)

    def facts(self) -> list[Fact]:
        chain_id = self.scope.chain_id
        return [_fact(self.scope.chain_name, chain_id, self.decoder, self.names, entry) for entry in self.logs]


def confirmed_head(head: int, confirmations: int) -> int:
    """The last block the indexer records on a chain at ``head`` with ``confirmations``, as
    ``chain.events.EventReader.poll`` takes it (a depth of 0 counts as 1: the head itself)."""
    return max(0, head - max(1, confirmations) + 1)


def reconciled_contracts(record: DeploymentRecord) -> list[WatchedContract]:
    return [
        WatchedContract(key, deployed.address, deployed.artifact)
        for key, deployed in sorted(record.contracts.items())
        if deployed.artifact in RECONCILED_ARTIFACTS
    ]


def deployment_block(record: DeploymentRecord) -> int:
    return min((deployed.block for deployed in record.contracts.values()), default=0)


def scope_for(record: DeploymentRecord, from_block: int | None, to_block: int, head: int | None = None) -> ChainScope:
    """The scope of a run over ``from_block`` (default: the deployment) .. ``to_block`` of a chain whose head is
    ``head`` (default: ``to_block``)."""
    first = deployment_block(record)
    start = first if from_block is None else max(0, from_block)
    aggregator = record.contracts.get("CreditAggregator")
    deployer = str(aggregator.constructor_args[0]) if aggregator and aggregator.constructor_args else ""
    timelock = record.contracts["Timelock"].address if "Timelock" in record.contracts else ""
    at_head = head is None or to_block >= head
    return ChainScope(
        record.chain_name,
        record.chain_id,
        start,
        to_block,
        deployer,
        timelock,
        start <= first,
        at_head=at_head,
        wiring_until=record.handover_block,
    )


async def read_chain(
    client: ChainClient,
    record: DeploymentRecord,
    from_block: int | None = None,
    to_block: int | None = None,
    *,
    max_range: int = 5_000,
    progress: Callable[[ChainScope, int], None] | None = None,
) -> ChainRead:
    """The logs of our contracts on ``client``'s chain in ``from_block`` (default: the deployment) ..
    ``to_block`` (default: the confirmed head), pools registered later included, and the code findings.

    A run ends at most at the chain's confirmed head — ``confirmations`` deep, the last block the indexer records
    (``chain.events.EventReader``: head - confirmations + 1) — and is judged as at the head there: read to the raw
    head, it reported the newest loans and repayments as not recorded on a chain with more than one confirmation, and
    an incremental run (``--since-last``, which starts after the previous run's last block) never read again the
    blocks that were unconfirmed when the previous run read them, so a reorg among them went unreconciled."""
    confirmed = confirmed_head(int(await client.rpc("eth_blockNumber"), 16), client.config.confirmations)
    scope = scope_for(record, from_block, confirmed if to_block is None else min(to_block, confirmed), confirmed)
    contracts = reconciled_contracts(record)
    decoder = EventDecoder(client.w3.codec)
    for contract in contracts:
        decoder.add(contract)
    names = {c.address.lower(): c.name for c in contracts}
    logs = await fetch_raw_logs(
        client,
        [c.address for c in contracts],
        from_block=scope.from_block,
        to_block=scope.to_block,
        max_range=max_range,
        progress=None if progress is None else lambda block: progress(scope, block),
    )
    pools = await _pools_registered_before(client, record, scope, max_range) + [
        str(decoded.args["pool"])
        for entry in logs
        if entry["topics"]
        and bytes(entry["topics"][0]) == _pool_registered_topic()
        and (decoded := decoder.decode(client.config.chain_id, entry)) is not None
    ]
    registered = [
        WatchedContract(registered_pool_key(pool), to_checksum_address(pool), "LendingPool")
        for pool in dict.fromkeys(pools)
        if pool.lower() not in names
    ]
    if registered:  # a pool registered through governance after deployment: its logs too
        for contract in registered:
            decoder.add(contract)
            names[contract.address.lower()] = contract.name
        more = await fetch_raw_logs(
            client,
            [c.address for c in registered],
            from_block=scope.from_block,
            to_block=scope.to_block,
            max_range=max_range,
        )
        logs.extend(more)
        contracts.extend(registered)
    code = [finding for contract in contracts if (finding := await _check_code(client, contract)) is not None]
    return ChainRead(scope, code, logs, decoder, names, await _senders(client, logs))


async def _senders(client: ChainClient, logs: list[LogReceipt]) -> dict[str, TxParties]:
    """The parties of every transaction that holds a log of ``SENT_BY_EVENTS`` (a few: governance is rare)."""
    wanted = _sent_by_topics()
    hashes = sorted(
        {
            entry["transactionHash"].to_0x_hex().lower()
            for entry in logs
            if entry["topics"] and bytes(entry["topics"][0]) in wanted
        }
    )
    found = await asyncio.gather(*(client.w3.eth.get_transaction(HexStr(tx_hash)) for tx_hash in hashes))
    return {
        tx_hash: TxParties(str(tx["from"]), str(tx.get("to") or "")) for tx_hash, tx in zip(hashes, found, strict=True)
    }


@cache
def _sent_by_topics() -> frozenset[bytes]:
    """The topics of ``SENT_BY_EVENTS`` in our contracts' ABIs."""
    topics = set()
    for artifact in RECONCILED_ARTIFACTS:
        for entry in load_artifact(artifact).abi:
            if entry.get("type") == "event" and entry.get("name") in SENT_BY_EVENTS:
                topics.add(bytes(event_abi_to_log_topic(cast(ABIEvent, entry))))
    return frozenset(topics)


async def _pools_registered_before(
    client: ChainClient, record: DeploymentRecord, scope: ChainScope, max_range: int
) -> list[str]:
    """The pools registered through governance between the deployment and the first block of a run over part of
    the chain (``--from-block``, ``--since-last``), read with the PoolRegistered topic alone: the run reads their
    logs in its range and checks their code as it does for the pools registered inside it."""
    aggregator = record.contracts.get("CreditAggregator")
    first = deployment_block(record)
    if aggregator is None or scope.from_block <= first:
        return []
    abi = load_artifact("CreditAggregator").abi
    found = await fetch_logs(
        client,
        to_checksum_address(aggregator.address),
        abi,
        "PoolRegistered",
        from_block=first,
        to_block=scope.from_block - 1,
        max_range=max_range,
    )
    return [str(log.args["pool"]) for log in found]


@cache
def _pool_registered_topic() -> bytes:
    """The topic of the CreditAggregator's ``PoolRegistered``: the only logs decoded while reading."""
    abi = load_artifact("CreditAggregator").abi
    event = next(item for item in abi if item.get("type") == "event" and item.get("name") == "PoolRegistered")
    return bytes(event_abi_to_log_topic(cast(ABIEvent, event)))


def _fact(chain_name: str, chain_id: int, decoder: EventDecoder, names: dict[str, str], entry: LogReceipt) -> Fact:
    address = to_checksum_address(entry["address"])
    topic = "0x" + bytes(entry["topics"][0]).hex() if entry["topics"] else ""
    decoded = decoder.decode(chain_id, entry) if topic and bytes(entry["topics"][0]) in known_topics() else None
    return Fact(
        chain_name,
        names.get(address.lower(), address),
        address,
        None if decoded is None else decoded.event,
        {} if decoded is None else decoded.args,
        int(entry["blockNumber"]),
        entry["transactionHash"].to_0x_hex(),
        int(entry["logIndex"]),
        topic,
    )


async def _check_code(client: ChainClient, contract: WatchedContract) -> CodeFinding | None:
    onchain = bytes(await client.w3.eth.get_code(contract.address))
    if not onchain:
        return CodeFinding(contract.name, contract.address, "no contract at the recorded address")
    difference = compare_code(onchain, load_artifact(contract.artifact))
    if difference is None:
        return None
    return CodeFinding(
        contract.name, contract.address, f"the code at the recorded address is not {contract.artifact}'s: {difference}"
    )
