"""The event reader: contract events decoded with the artifacts' ABIs, delivered only once their block is
``confirmations`` deep, with reorgs traced back to the common ancestor and re-read.

* ``eth_getLogs`` over adaptive block ranges: a range the node refuses (too many results, too wide, timed out)
  is halved, a range that passes is doubled up to ``max_range``.
* Before a range is delivered its end block's hash is read before and after ``eth_getLogs``, and every log's
  block hash must match: a reorg during the read discards the range.
* The checkpoint (block number and hash) and the hashes of recently delivered blocks are persisted per (chain,
  reader) after the handler returns, so a restart resumes where it stopped (delivery is at least once).
* When the checkpoint's hash is no longer canonical, the reader walks back its stored hashes to the newest block
  still canonical (the common ancestor), reports a ``ReorgReport`` to the handler (which undoes what it derived
  from blocks above the ancestor), records the reorg, and re-reads from there.
* ``read_chains`` runs one reader per chain concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.abi import event_abi_to_log_topic
from eth_utils.address import to_checksum_address
from web3._utils.events import get_event_data
from web3.exceptions import Web3Exception
from web3.types import EventData, FilterParams, LogReceipt

from chain.artifacts import load_artifact
from chain.client import ChainClient
from chain.errors import ChainError, RpcUnavailable
from store.chain import ChainRepository, SqlChainStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WatchedContract:
    """A deployed contract whose events are read: a name for reports, its address, its artifact (for the ABI)."""

    name: str
    address: ChecksumAddress
    artifact: str


@dataclass(frozen=True, slots=True)
class ChainEvent:
    chain_id: int
    contract: str
    address: ChecksumAddress
    event: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


@dataclass(frozen=True, slots=True)
class ReorgReport:
    """Blocks above ``ancestor_block`` were delivered and are no longer canonical: undo what came from them."""

    chain_id: int
    reader: str
    checkpoint_block: int
    ancestor_block: int

    @property
    def depth(self) -> int:
        return self.checkpoint_block - self.ancestor_block


@dataclass(frozen=True, slots=True)
class EventBatch:
    chain_id: int
    from_block: int
    to_block: int
    events: tuple[ChainEvent, ...] = ()
    reorg: ReorgReport | None = None


EventHandler = Callable[[EventBatch], Awaitable[None]]

_RANGE_REFUSALS = ("range", "limit", "too many", "exceed", "timeout", "response size")


class _RangeTooWide(Exception):
    pass


@dataclass
class _Decoder:
    by_topic: dict[tuple[str, bytes], tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def add(self, contract: WatchedContract) -> None:
        for item in load_artifact(contract.artifact).abi:
            if item.get("type") == "event" and not item.get("anonymous"):
                topic = event_abi_to_log_topic(item)  # type: ignore[arg-type]
                self.by_topic[(contract.address.lower(), topic)] = (contract.name, item)


class EventReader:
    """Reads the events of ``contracts`` on one chain for one named reader (see the module docstring)."""

    def __init__(
        self,
        client: ChainClient,
        store: SqlChainStore,
        contracts: Sequence[WatchedContract],
        *,
        reader: str = "default",
        start_block: int = 0,
        confirmations: int | None = None,
        max_range: int = 2_000,
        initial_range: int = 500,
        keep_hashes: int = 256,
    ) -> None:
        self.client, self.store, self.reader = client, store, reader
        self.chain_id = client.config.chain_id
        self.contracts = list(contracts)
        self.start_block = start_block
        self.confirmations = max(1, client.config.confirmations if confirmations is None else confirmations)
        self.max_range, self.keep_hashes = max_range, keep_hashes
        self._range = max(1, min(initial_range, max_range))
        self._decoder = _Decoder()
        for contract in self.contracts:
            self._decoder.add(contract)
        self.reorgs: list[ReorgReport] = []

    async def _block_hash(self, number: int) -> str | None:
        block = await self.client.rpc("eth_getBlockByNumber", hex(number), False)
        return None if not block else str(block["hash"])

    async def _checkpoint(self) -> tuple[int, str] | None:
        return await self.store.run(lambda repo: repo.checkpoint(self.chain_id, self.reader))

    async def poll(self, handler: EventHandler) -> int:
        """Deliver everything confirmed since the checkpoint; returns the number of events delivered."""
        head = int(await self.client.rpc("eth_blockNumber"), 16)
        safe = head - self.confirmations + 1
        checkpoint = await self._checkpoint()
        if checkpoint is not None and await self._block_hash(checkpoint[0]) != checkpoint[1]:
            checkpoint = await self._roll_back(checkpoint, handler)
        next_block = self.start_block if checkpoint is None else checkpoint[0] + 1
        delivered = 0
        while next_block <= safe:
            to_block = min(next_block + self._range - 1, safe)
            try:
                batch, end_hash, log_hashes = await self._read(next_block, to_block, checkpoint)
            except _RangeTooWide as err:
                if self._range == 1:
                    raise ChainError(f"{self.client.name}: eth_getLogs fails even for one block: {err}") from err
                self._range = max(1, self._range // 2)
                continue
            if batch is None:  # the chain moved under the read: look again next poll
                break
            await handler(batch)
            hashes = {**log_hashes, to_block: end_hash}
            await self.store.run(functools.partial(self._advance, number=to_block, block_hash=end_hash, hashes=hashes))
            checkpoint = (to_block, end_hash)
            delivered += len(batch.events)
            next_block = to_block + 1
            self._range = min(self.max_range, self._range * 2)
        return delivered

    def _advance(self, repo: ChainRepository, number: int, block_hash: str, hashes: dict[int, str]) -> None:
        repo.add_block_hashes(self.chain_id, self.reader, hashes, self.keep_hashes)
        repo.set_checkpoint(self.chain_id, self.reader, number, block_hash)

    async def _read(
        self, from_block: int, to_block: int, checkpoint: tuple[int, str] | None
    ) -> tuple[EventBatch | None, str, dict[int, str]]:
        end_before = await self._block_hash(to_block)
        if checkpoint is not None and from_block == checkpoint[0] + 1:
            first = await self.client.rpc("eth_getBlockByNumber", hex(from_block), False)
            if not first or str(first["parentHash"]) != checkpoint[1]:
                return None, "", {}
        params: FilterParams = {
            "fromBlock": from_block,
            "toBlock": to_block,
            "address": [contract.address for contract in self.contracts],
        }
        try:
            logs = await self.client.w3.eth.get_logs(params)
        except RpcUnavailable:
            raise
        except (Web3Exception, ValueError) as err:
            if any(token in str(err).lower() for token in _RANGE_REFUSALS):
                raise _RangeTooWide(str(err)) from err
            raise ChainError(f"{self.client.name}: eth_getLogs {from_block}-{to_block} failed: {err}") from err
        end_after = await self._block_hash(to_block)
        if end_before is None or end_before != end_after:
            return None, "", {}
        log_hashes: dict[int, str] = {}
        events: list[ChainEvent] = []
        for entry in logs:
            number, block_hash = int(entry["blockNumber"]), entry["blockHash"].to_0x_hex()
            if log_hashes.setdefault(number, block_hash) != block_hash or (
                number == to_block and block_hash != end_after
            ):
                return None, "", {}
            decoded = self._decode(entry)
            if decoded is not None:
                events.append(decoded)
        batch = EventBatch(self.chain_id, from_block, to_block, tuple(events))
        return batch, end_after, log_hashes

    def _decode(self, entry: LogReceipt) -> ChainEvent | None:
        if not entry["topics"]:
            return None
        found = self._decoder.by_topic.get((str(entry["address"]).lower(), bytes(entry["topics"][0])))
        if found is None:
            return None
        contract, abi = found
        data: EventData = get_event_data(self.client.w3.codec, abi, entry)
        return ChainEvent(
            chain_id=self.chain_id,
            contract=contract,
            address=to_checksum_address(entry["address"]),
            event=str(data["event"]),
            args=dict(data["args"]),
            block_number=int(entry["blockNumber"]),
            block_hash=entry["blockHash"].to_0x_hex(),
            tx_hash=entry["transactionHash"].to_0x_hex(),
            log_index=int(entry["logIndex"]),
        )

    async def _roll_back(self, checkpoint: tuple[int, str], handler: EventHandler) -> tuple[int, str] | None:
        """Find the newest stored block that is still canonical, report the reorg, and move the checkpoint."""
        known = await self.store.run(lambda repo: repo.block_hashes(self.chain_id, self.reader))
        ancestor: tuple[int, str] | None = None
        for number, stored_hash in known:
            if await self._block_hash(number) == stored_hash:
                ancestor = (number, stored_hash)
                break
        ancestor_block = ancestor[0] if ancestor is not None else self.start_block - 1
        report = ReorgReport(self.chain_id, self.reader, checkpoint[0], ancestor_block)
        log.warning("reorg on %s: delivered up to %s, ancestor %s", self.client.name, checkpoint[0], ancestor_block)
        await handler(EventBatch(self.chain_id, ancestor_block + 1, checkpoint[0], (), report))

        def work(repo: ChainRepository) -> None:
            repo.add_reorg(self.chain_id, self.reader, checkpoint[0], ancestor_block)
            repo.drop_block_hashes_above(self.chain_id, self.reader, ancestor_block)
            if ancestor is not None:
                repo.set_checkpoint(self.chain_id, self.reader, ancestor[0], ancestor[1])
            else:
                repo.delete_checkpoint(self.chain_id, self.reader)

        await self.store.run(work)
        self.reorgs.append(report)
        return ancestor

    async def run(self, handler: EventHandler, stop: asyncio.Event, interval: float | None = None) -> None:
        """Poll until ``stop`` is set; an RPC outage is logged and retried at the next interval."""
        pause = interval if interval is not None else min(2.0, self.client.config.block_time_seconds)
        while not stop.is_set():
            try:
                await self.poll(handler)
            except RpcUnavailable as err:
                log.warning("event reader %s on %s: %s", self.reader, self.client.name, err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)


async def read_chains(readers: Sequence[EventReader], handler: EventHandler, stop: asyncio.Event) -> None:
    """Run one reader per chain concurrently until ``stop`` is set."""
    async with asyncio.TaskGroup() as group:
        for reader in readers:
            group.create_task(reader.run(handler, stop), name=f"events-{reader.client.name}-{reader.reader}")
