"""The event reader: contract events decoded with the artifacts' ABIs, delivered only once their block is
``confirmations`` deep, with reorgs traced back to the common ancestor and re-read.

* ``eth_getLogs`` over adaptive block ranges: a range the node refuses as too heavy (too many results, too wide,
  timed out: ``chain.log_refusals``) is halved, a range that passes is doubled up to ``max_range``; a single block
  refused for all the watched addresses at once is read one address at a time. A refusal for the provider's rate
  limit is no reason to read less: the same range is asked again after a pause (``RATE_LIMIT_TRIES`` in all, the
  pauses doubling, with jitter), then the poll fails with ``RpcRateLimited``, an outage its caller waits out.
* Before a range is delivered its end block's hash is read before and after ``eth_getLogs``, and every log's
  block hash must match: a reorg during the read discards the range.
* The checkpoint (block number and hash) and the hashes of recently delivered blocks are persisted per (chain,
  reader) after the handler returns, so a restart resumes where it stopped (delivery is at least once).
* A ``writer`` (``poll(writer=…)``) runs in the very transaction that moves the checkpoint: what it writes and the
  checkpoint commit together or not at all, so a restart neither loses nor repeats its work. A ``fence`` given to the
  reader (a lease's fencing check, ``store.leases``) runs first in that transaction and in the rollback's: a reader
  whose lease moved to another process writes nothing.
* When the checkpoint's hash is no longer canonical, the reader walks back its stored hashes to the newest block
  still canonical (the common ancestor), reports a ``ReorgReport`` to the handler (which undoes what it derived
  from blocks above the ancestor), records the reorg, and re-reads from there. A node whose head is below the
  checkpoint is behind (waited for) when its block at the newest stored height at or below its head has the stored
  hash, and on a shorter branch (a reorg, rolled back the same way) when it has another.
* A ``discover`` hook names the contracts an event registers (a LendingPool's ``PoolRegistered``): they are watched
  from then on, and their logs from the registering block to the end of the range being read are read before the
  range is delivered, so nothing of theirs in a range already being read is missed.
* ``read_chains`` runs one reader per chain concurrently.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi.grammar import BasicType, parse
from eth_typing import ChecksumAddress
from eth_utils.abi import event_abi_to_log_topic
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from sqlalchemy.orm import Session
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential
from web3._utils.events import get_event_data
from web3.exceptions import Web3Exception
from web3.types import EventData, FilterParams, LogReceipt

from chain.artifacts import load_artifact
from chain.client import ChainClient
from chain.errors import ChainError, RpcRateLimited, RpcUnavailable
from chain.log_refusals import range_too_wide, rate_limited
from chain.waiting import wait_at_most
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
    """Events of blocks ``from_block``..``to_block`` in chain order. ``block_hashes`` gives the canonical hash of
    every block in the range that holds one of the events, and of ``to_block``: a fact recorded in the range under
    another hash (or in a block with none of our events) is from a block that is no longer canonical."""

    chain_id: int
    from_block: int
    to_block: int
    events: tuple[ChainEvent, ...] = ()
    reorg: ReorgReport | None = None
    block_hashes: Mapping[int, str] = field(default_factory=dict)


EventHandler = Callable[[EventBatch], Awaitable[None]]
BatchWriter = Callable[[Session, EventBatch], None]
"""Writes what a batch means in the caller's session; the reader commits it with the checkpoint move."""
Fence = Callable[[Session], None]
"""Raises when the reader may no longer write (``store.leases.fence``)."""
Discover = Callable[[ChainEvent], WatchedContract | None]
"""The contract an event registers, whose events are to be read too (None for most events)."""

RATE_LIMIT_TRIES = 4  # eth_getLogs of one range refused for the provider's rate, before the poll fails


class _RangeTooWide(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _EventLayout:
    """Where an event's arguments are in a log, taken from its ABI once: the indexed ones in topics 1…, the others
    ABI-encoded in ``data``; the addresses among them are given checksummed, as web3's ``get_event_data`` gives
    them. Only for events whose arguments are all static elementary types (the others go through web3)."""

    name: str
    indexed: tuple[tuple[str, str], ...]  # (name, type) in topic order
    data_names: tuple[str, ...]
    data_types: tuple[str, ...]

    @classmethod
    def of(cls, abi: Mapping[str, Any]) -> _EventLayout | None:
        inputs = abi.get("inputs", [])
        if any(not _static_elementary(item["type"]) for item in inputs):
            return None
        names = [item["name"] for item in inputs]
        if len(set(names)) != len(names) or not all(names):
            return None
        unindexed = [item for item in inputs if not item.get("indexed")]
        return cls(
            str(abi["name"]),
            tuple((item["name"], item["type"]) for item in inputs if item.get("indexed")),
            tuple(item["name"] for item in unindexed),
            tuple(item["type"] for item in unindexed),
        )

    def args(self, codec: Any, entry: LogReceipt) -> dict[str, Any] | None:
        """The decoded arguments, or None when the log does not fit the layout (web3 then says why)."""
        topics = entry["topics"][1:]
        if len(topics) != len(self.indexed):
            return None
        args = {
            name: _checksummed(kind, codec.decode([kind], bytes(topic))[0])
            for (name, kind), topic in zip(self.indexed, topics, strict=True)
        }
        data = entry["data"]
        values = codec.decode(self.data_types, data if isinstance(data, bytes) else HexBytes(data))
        for name, kind, value in zip(self.data_names, self.data_types, values, strict=True):
            args[name] = _checksummed(kind, value)
        return args


def _static_elementary(kind: str) -> bool:
    """bool, address, uintN, intN or bytesN: what an event topic holds as itself (not hashed), decoded as itself."""
    parsed = parse(kind)
    return isinstance(parsed, BasicType) and not parsed.arrlist and not parsed.is_dynamic and parsed.base in _BASES


_BASES = frozenset({"bool", "address", "uint", "int", "bytes"})


def _checksummed(kind: str, value: Any) -> Any:
    return to_checksum_address(value) if kind == "address" else value


@dataclass
class EventDecoder:
    """Decodes the logs of watched contracts with their artifacts' ABIs (every non-anonymous event, so events a
    new contract version adds are decoded without code changes). Also for a receipt's logs (``decode_receipt``).
    An event whose arguments are all static elementary types is decoded straight with the codec from a layout
    taken from its ABI once (``_EventLayout``), the others with web3's ``get_event_data``: the same values."""

    codec: Any
    by_topic: dict[tuple[str, bytes], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    layouts: dict[tuple[str, bytes], _EventLayout | None] = field(default_factory=dict)

    def add(self, contract: WatchedContract) -> None:
        for item in load_artifact(contract.artifact).abi:
            if item.get("type") == "event" and not item.get("anonymous"):
                topic = event_abi_to_log_topic(item)  # type: ignore[arg-type]
                self.by_topic[(contract.address.lower(), topic)] = (contract.name, item)
                self.layouts[(contract.address.lower(), topic)] = _EventLayout.of(item)

    def decode(self, chain_id: int, entry: LogReceipt) -> ChainEvent | None:
        """The event of ``entry``, or None when it is not from a watched contract or not in its ABI."""
        if not entry["topics"]:
            return None
        key = (str(entry["address"]).lower(), bytes(entry["topics"][0]))
        found = self.by_topic.get(key)
        if found is None:
            return None
        contract, abi = found
        layout = self.layouts.get(key)
        args = None if layout is None else layout.args(self.codec, entry)
        if layout is None or args is None:
            data: EventData = get_event_data(self.codec, abi, entry)
            name, args = str(data["event"]), dict(data["args"])
        else:
            name = layout.name
        return ChainEvent(
            chain_id=chain_id,
            contract=contract,
            address=to_checksum_address(entry["address"]),
            event=name,
            args=args,
            block_number=int(entry["blockNumber"]),
            block_hash=_hex(entry["blockHash"]),
            tx_hash=_hex(entry["transactionHash"]),
            log_index=int(entry["logIndex"]),
        )

    def decode_receipt(self, chain_id: int, receipt: Mapping[str, Any]) -> list[ChainEvent]:
        """The watched contracts' events in a transaction receipt, in log order."""
        events = (self.decode(chain_id, entry) for entry in receipt["logs"])
        return [event for event in events if event is not None]


def _hex(value: Any) -> str:
    return value.to_0x_hex() if hasattr(value, "to_0x_hex") else str(value)


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
        fence: Fence | None = None,
        discover: Discover | None = None,
        rate_limit_pause: float = 1.0,
    ) -> None:
        """``rate_limit_pause``: the first pause (seconds, with jitter) before asking again a range the provider
        refused for its rate limit; it doubles per refusal, up to eight times itself."""
        self.client, self.store, self.reader = client, store, reader
        self.chain_id = client.config.chain_id
        self.contracts = list(contracts)
        self.start_block = start_block
        self.confirmations = max(1, client.config.confirmations if confirmations is None else confirmations)
        self.max_range, self.keep_hashes = max_range, keep_hashes
        self._range = max(1, min(initial_range, max_range))
        self.fence, self.discover = fence, discover
        self.rate_limit_pause = rate_limit_pause
        self._decoder = EventDecoder(client.w3.codec)
        for contract in self.contracts:
            self._decoder.add(contract)
        self.reorgs: list[ReorgReport] = []

    def watch(self, contract: WatchedContract) -> None:
        """Read ``contract``'s events too, from the next range on (a pool registered after the reader started)."""
        if not self.watches(contract.address):
            self.contracts.append(contract)
            self._decoder.add(contract)

    def watches(self, address: str) -> bool:
        return any(known.address.lower() == address.lower() for known in self.contracts)

    @property
    def decoder(self) -> EventDecoder:
        return self._decoder

    async def _block_hash(self, number: int) -> str | None:
        block = await self.client.rpc("eth_getBlockByNumber", hex(number), False)
        return None if not block else str(block["hash"])

    async def _checkpoint(self) -> tuple[int, str] | None:
        return await self.store.run(lambda repo: repo.checkpoint(self.chain_id, self.reader))

    async def poll(self, handler: EventHandler | None = None, *, writer: BatchWriter | None = None) -> int:
        """Deliver everything confirmed since the checkpoint; returns the number of events delivered.

        Args:
            handler: awaited with each batch before its checkpoint moves (at-least-once delivery).
            writer: called with each batch inside the transaction that moves the checkpoint (exactly once in
                effect: its writes and the checkpoint commit together).
        """
        head = int(await self.client.rpc("eth_blockNumber"), 16)
        safe = head - self.confirmations + 1
        checkpoint = await self._checkpoint()
        if checkpoint is not None:
            current = await self._block_hash(checkpoint[0])
            if current is None and not await self._forked_below(checkpoint[0], head):
                return 0  # a node behind the one that served the checkpoint: waited for
            if current != checkpoint[1]:
                checkpoint = await self._roll_back(checkpoint, safe, handler, writer)
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
            if handler is not None:
                await handler(batch)
            hashes = {**log_hashes, to_block: end_hash}
            await self.store.run(
                functools.partial(
                    self._advance, batch=batch, writer=writer, number=to_block, block_hash=end_hash, hashes=hashes
                )
            )
            checkpoint = (to_block, end_hash)
            delivered += len(batch.events)
            next_block = to_block + 1
            self._range = min(self.max_range, self._range * 2)
        return delivered

    def _advance(
        self,
        repo: ChainRepository,
        batch: EventBatch,
        writer: BatchWriter | None,
        number: int,
        block_hash: str,
        hashes: dict[int, str],
    ) -> None:
        if self.fence is not None:
            self.fence(repo.session)
        if writer is not None:
            writer(repo.session, batch)
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
        entries = await self._logs(from_block, to_block, [contract.address for contract in self.contracts])
        events = [event for event in map(self._decode, entries) if event is not None]
        backfilled = await self._backfill(events, to_block)
        end_after = await self._block_hash(to_block)
        if end_before is None or end_before != end_after:
            return None, "", {}
        log_hashes: dict[int, str] = {}
        for entry in (*entries, *backfilled):
            number, block_hash = int(entry["blockNumber"]), entry["blockHash"].to_0x_hex()
            if log_hashes.setdefault(number, block_hash) != block_hash or (
                number == to_block and block_hash != end_after
            ):
                return None, "", {}
        if backfilled:
            events += [event for event in map(self._decode, backfilled) if event is not None]
            events.sort(key=lambda event: (event.block_number, event.log_index))
        hashes = {**log_hashes, to_block: end_after}
        batch = EventBatch(self.chain_id, from_block, to_block, tuple(events), block_hashes=hashes)
        return batch, end_after, log_hashes

    async def _logs(self, from_block: int, to_block: int, addresses: list[ChecksumAddress]) -> list[LogReceipt]:
        """The logs of ``addresses`` in the range; a single block refused as too heavy for them all at once (more
        logs of ours than the node answers in one call) is read one address at a time, in log order, rather than
        hold the chain's reading at that block for ever."""
        try:
            return await self._paced_logs(from_block, to_block, addresses)
        except _RangeTooWide as err:
            if from_block != to_block or len(addresses) < 2:
                raise
            log.warning(
                "%s: eth_getLogs refused for block %s (%s): reading its %s addresses one at a time",
                self.client.name,
                from_block,
                err,
                len(addresses),
            )
        entries: list[LogReceipt] = []
        for address in addresses:
            entries += await self._paced_logs(from_block, to_block, [address])
        return sorted(entries, key=lambda entry: int(entry["logIndex"]))

    async def _paced_logs(self, from_block: int, to_block: int, addresses: list[ChecksumAddress]) -> list[LogReceipt]:
        """One ``eth_getLogs``, asked again after a pause while the provider refuses it for its rate limit."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(RATE_LIMIT_TRIES),
            wait=wait_random_exponential(multiplier=self.rate_limit_pause, max=8 * self.rate_limit_pause),
            retry=retry_if_exception_type(RpcRateLimited),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._get_logs(from_block, to_block, addresses)
        raise AssertionError("unreachable: tenacity returns or re-raises")  # pragma: no cover

    async def _get_logs(self, from_block: int, to_block: int, addresses: list[ChecksumAddress]) -> list[LogReceipt]:
        params: FilterParams = {"fromBlock": from_block, "toBlock": to_block, "address": addresses}
        try:
            return list(await self.client.w3.eth.get_logs(params))
        except RpcUnavailable:
            raise
        except (Web3Exception, ValueError) as err:
            where = f"{self.client.name}: eth_getLogs {from_block}-{to_block}"
            if rate_limited(err):
                raise RpcRateLimited(f"{where} refused for the provider's rate limit: {err}") from err
            if range_too_wide(err):
                raise _RangeTooWide(str(err)) from err
            raise ChainError(f"{where} failed: {err}") from err

    async def _backfill(self, events: list[ChainEvent], to_block: int) -> list[LogReceipt]:
        """The logs, up to ``to_block``, of the contracts that ``events`` register and that are not watched yet,
        from each one's registering block on (the range was read without their addresses)."""
        if self.discover is None:
            return []
        found: dict[str, int] = {}
        for event in events:
            contract = self.discover(event)
            if contract is not None and not self.watches(contract.address):
                self.watch(contract)
                found[contract.address] = event.block_number
        if not found:
            return []
        log.info(
            "event reader %s on %s: reading %s from block %s",
            self.reader,
            self.client.name,
            sorted(found),
            min(found.values()),
        )
        return await self._logs(min(found.values()), to_block, [to_checksum_address(a) for a in found])

    def _decode(self, entry: LogReceipt) -> ChainEvent | None:
        return self._decoder.decode(self.chain_id, entry)

    async def _forked_below(self, checkpoint_block: int, head: int) -> bool:
        """Whether a node with no block at the checkpoint (its head below it) is on another branch than the one
        delivered, rather than behind on the same one.

        Either is possible: an endpoint behind the one that served the checkpoint has not reached it yet, and a
        reorg onto a shorter branch (or onto one not grown as long yet) has dropped it. A block's hash commits to
        all its ancestors, so the newest stored hash at or below the node's head decides. Under another hash on
        the node, the delivered blocks from there on are not on its chain: a reorg (``_roll_back`` walks down the
        stored hashes to the common ancestor). Under the stored hash, the node has the delivered chain up to that
        block and is taken to lag behind: waited for, as rolling back would retract facts it has merely not
        reached. The stored hashes are the last block of every delivered range and each block with events, of the
        newest ``keep_hashes`` blocks; a steady reader stores about every block, one per poll. With none at or
        below the head (a node further behind than the oldest), or no block there on the node (a failover
        provider that took the head from an endpoint further on), nothing tells the two apart and the node is
        waited for; so is a branch that leaves the delivered one above the newest stored block at or below the
        head. Such a reorg is seen once the new branch passes the checkpoint's height, as before."""
        known = await self.store.run(lambda repo: repo.block_hashes(self.chain_id, self.reader))
        stored = next(((number, block_hash) for number, block_hash in known if number <= head), None)
        current = None if stored is None else await self._block_hash(stored[0])
        if stored is None or current is None or current == stored[1]:
            log.warning(
                "%s: the node is at block %s, behind the checkpoint %s; waiting",
                self.client.name,
                head,
                checkpoint_block,
            )
            return False
        log.warning(
            "%s: the node is at block %s, below the checkpoint %s, and its block %s is not the one delivered: a reorg",
            self.client.name,
            head,
            checkpoint_block,
            stored[0],
        )
        return True

    async def _roll_back(
        self, checkpoint: tuple[int, str], safe: int, handler: EventHandler | None, writer: BatchWriter | None
    ) -> tuple[int, str] | None:
        """Find the newest stored block that is still canonical, report the reorg, and move the checkpoint.

        The report's batch spans only the dropped blocks above ``safe`` (the node's confirmed head now), with no
        events and no hashes: what was recorded from them is gone for now. The blocks from the ancestor up to
        ``safe`` are re-read next, as ranges whose writer drops their stale facts in the same transaction as it
        records the new ones, so that a transaction mined again on the new branch keeps what it made."""
        known = await self.store.run(lambda repo: repo.block_hashes(self.chain_id, self.reader))
        ancestor: tuple[int, str] | None = None
        for number, stored_hash in known:
            if await self._block_hash(number) == stored_hash:
                ancestor = (number, stored_hash)
                break
        ancestor_block = ancestor[0] if ancestor is not None else self.start_block - 1
        report = ReorgReport(self.chain_id, self.reader, checkpoint[0], ancestor_block)
        log.warning("reorg on %s: delivered up to %s, ancestor %s", self.client.name, checkpoint[0], ancestor_block)
        reorg_batch = EventBatch(self.chain_id, max(ancestor_block, safe) + 1, checkpoint[0], (), report)
        if handler is not None:
            await handler(reorg_batch)

        def work(repo: ChainRepository) -> None:
            if self.fence is not None:
                self.fence(repo.session)
            if writer is not None:
                writer(repo.session, reorg_batch)
            repo.add_reorg(self.chain_id, self.reader, checkpoint[0], ancestor_block)
            repo.drop_block_hashes_above(self.chain_id, self.reader, ancestor_block)
            if ancestor is not None:
                repo.set_checkpoint(self.chain_id, self.reader, ancestor[0], ancestor[1])
            else:
                repo.delete_checkpoint(self.chain_id, self.reader)

        await self.store.run(work)
        self.reorgs.append(report)
        return ancestor

    async def run(
        self,
        handler: EventHandler | None,
        stop: asyncio.Event,
        interval: float | None = None,
        *,
        writer: BatchWriter | None = None,
    ) -> None:
        """Poll until ``stop`` is set; an RPC outage is logged and retried at the next interval."""
        pause = interval if interval is not None else min(2.0, self.client.config.block_time_seconds)
        while not stop.is_set():
            try:
                await self.poll(handler, writer=writer)
            except RpcUnavailable as err:
                log.warning("event reader %s on %s: %s", self.reader, self.client.name, err)
            await wait_at_most(stop.wait(), pause)


async def read_chains(readers: Sequence[EventReader], handler: EventHandler, stop: asyncio.Event) -> None:
    """Run one reader per chain concurrently until ``stop`` is set."""
    async with asyncio.TaskGroup() as group:
        for reader in readers:
            group.create_task(reader.run(handler, stop), name=f"events-{reader.client.name}-{reader.reader}")
