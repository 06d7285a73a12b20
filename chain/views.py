"""Contract views read as pre-encoded ``eth_call``s: the selector and ABI types of a view are worked out once per
(artifact, function) and the answer decoded with eth-abi, so the request path builds no web3 contract object and
recomputes no selector per call; several views go to a node as one JSON-RPC batch (``read_views``; more than
``VIEW_BATCH_LIMIT`` as several, read at one block). ``BlockViews`` shares the answers of views pinned to a block
number between the callers that ask the same calls at the same block."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache, lru_cache, partial
from typing import Any

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types, get_abi_output_types
from web3.providers.async_base import AsyncBaseProvider
from web3.types import RPCEndpoint

from chain.artifacts import load_artifact
from chain.errors import ChainError

BlockTag = int | str  # a block number, or "latest" / "pending" / …


@dataclass(frozen=True, slots=True)
class View:
    """One view function of a contract: its selector and its input and output types."""

    name: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def calldata(self, *args: Any) -> str:
        try:  # keyed by each argument's type too: True and 1 are equal keys, not the same argument
            return _calldata(self, tuple((type(arg), arg) for arg in args))
        except TypeError:  # an argument that cannot be a cache key (a list, say): encoded every time
            return _encoded(self, args)

    def decode(self, result: str) -> Any:
        """The answer of a call: the value itself for one output, else the tuple of outputs."""
        return _decoded(self.outputs, result)

    def call(self, address: str, *args: Any, block: BlockTag = "latest") -> ViewCall:
        return ViewCall(self, address, args, block)


def _encoded(view: View, args: tuple[Any, ...]) -> str:
    return "0x" + (view.selector + encode(list(view.inputs), list(args))).hex()


@lru_cache(maxsize=4096)
def _calldata(view: View, typed_args: tuple[tuple[type, Any], ...]) -> str:
    """A call's ABI-encoded data, kept per (view, arguments): a pool is asked the same views with the same
    arguments (its address, a request's principal) request after request, and eth-abi builds its encoders anew
    for every call."""
    return _encoded(view, tuple(arg for _, arg in typed_args))


@lru_cache(maxsize=4096)
def _decoded(outputs: tuple[str, ...], result: str) -> Any:
    """An answer decoded, kept per (output types, answer): most answers repeat (a pool's rate model and term
    limit); the values are immutable (ints, strings, bytes, tuples)."""
    values = decode(list(outputs), bytes.fromhex(result.removeprefix("0x")))
    return values[0] if len(values) == 1 else values


@dataclass(frozen=True, slots=True)
class ViewCall:
    view: View
    address: str
    args: tuple[Any, ...]
    block: BlockTag = "latest"

    def request(self) -> tuple[RPCEndpoint, list[Any]]:
        block = hex(self.block) if isinstance(self.block, int) else self.block
        return RPCEndpoint("eth_call"), [{"to": self.address, "data": self.view.calldata(*self.args)}, block]


@cache
def view(artifact: str, name: str) -> View:
    """The view ``name`` of the compiled contract ``artifact`` (ArtifactNotFound, ChainError if it has none)."""
    for item in load_artifact(artifact).abi:
        if item.get("type") == "function" and item.get("name") == name:
            return View(
                name,
                function_abi_to_4byte_selector(item),  # type: ignore[arg-type]
                tuple(get_abi_input_types(item)),  # type: ignore[arg-type]
                tuple(get_abi_output_types(item)),  # type: ignore[arg-type]
            )
    raise ChainError(f"{artifact} has no function {name}")


#: the most calls ``read_views`` puts in one JSON-RPC batch: nodes cap a batch's size (geth's
#: ``--rpc.batch-request-limit`` is 1,000 by default, and hosted nodes cap lower or the same), and one past the cap is
#: refused whole, so a worklist that grew past it (the default job's ``getLoan`` per open loan) would fail every round
VIEW_BATCH_LIMIT = 100

#: how many of a read's batches are in flight at once
VIEW_BATCH_CONCURRENCY = 4


async def read_views(
    provider: AsyncBaseProvider,
    calls: Sequence[ViewCall],
    *,
    batch_limit: int = VIEW_BATCH_LIMIT,
    each: bool = False,
) -> list[Any]:
    """The decoded answers of ``calls``, sent as JSON-RPC batches of at most ``batch_limit`` calls (one batch when
    they fit); a revert or error answer raises ChainError, and so does an answer that is no value of the view's types
    (the empty answer of an address with no code) — unless ``each``: then that call's ChainError is its answer, and
    the others are read (a batch the node refuses whole still raises). Split, the read stays one snapshot: calls at
    ``latest`` are pinned to the head's number, read first (calls pinned to a number already, as servicing's are,
    need no read)."""
    if not calls:
        return []
    if batch_limit < 1:
        raise ValueError(f"batch_limit must be at least 1, not {batch_limit}")
    if len(calls) <= batch_limit:
        return await _read_batch(provider, calls, each)
    if any(call.block == "latest" for call in calls):
        head = await _head(provider)
        calls = [replace(call, block=head) if call.block == "latest" else call for call in calls]
    gate = asyncio.Semaphore(VIEW_BATCH_CONCURRENCY)

    async def read(part: Sequence[ViewCall]) -> list[Any]:
        async with gate:
            return await _read_batch(provider, part, each)

    parts = [calls[start : start + batch_limit] for start in range(0, len(calls), batch_limit)]
    return [answer for answers in await asyncio.gather(*(read(part) for part in parts)) for answer in answers]


async def _head(provider: AsyncBaseProvider) -> int:
    answer: Any = await provider.make_request(RPCEndpoint("eth_blockNumber"), [])
    if "error" in answer:
        raise ChainError(f"eth_blockNumber failed: {answer['error']}")
    return int(str(answer["result"]), 16)


async def _read_batch(provider: AsyncBaseProvider, calls: Sequence[ViewCall], each: bool = False) -> list[Any]:
    answers: Any = await provider.make_batch_request([call.request() for call in calls])
    if not isinstance(answers, list):
        raise ChainError(f"the node refused a batch of {len(calls)} views: {answers.get('error')}")
    if len(answers) != len(calls):
        raise ChainError(f"the node answered {len(answers)} of a batch of {len(calls)} views")
    decoded = []
    for call, answer in zip(calls, answers, strict=True):
        try:
            decoded.append(_answer(call, answer))
        except ChainError as err:
            if not each:
                raise
            decoded.append(err)
    return decoded


def _answer(call: ViewCall, answer: Any) -> Any:
    if "error" in answer:
        raise ChainError(f"{call.view.name} on {call.address} failed: {answer['error']}")
    try:
        return call.view.decode(str(answer["result"]))
    except DecodingError as err:  # "0x" from an address with no code: no answer of the view's type
        raise ChainError(f"{call.view.name} on {call.address}: no answer of its type (no contract there?)") from err


class BlockViews:
    """Views read at a block NUMBER, shared: what a view answers at a mined block cannot change, so the callers asking
    the same calls at the same block — concurrently or later — share one JSON-RPC batch and its decoded answers
    (immutable values). ``size`` batches at most are kept, the least recently used dropped first. A read that fails
    or is cancelled is not kept: the next caller reads again. A caller's cancellation stops its wait, not the shared
    read. Calls at ``latest`` or another tag are refused (ValueError): their answers change from block to block.

    Keyed by the block's number, not its hash: after a reorganisation that replaces the block of a number already read,
    the answers of the replaced block are served until the chain's head moves past that number."""

    def __init__(self, provider: AsyncBaseProvider, size: int = 256) -> None:
        self._provider = provider
        self._size = size
        self._reads: OrderedDict[tuple[ViewCall, ...], asyncio.Future[list[Any]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._reads)

    async def read(self, calls: Sequence[ViewCall]) -> list[Any]:
        """The decoded answers of ``calls`` (each pinned to a block number), read once per distinct batch."""
        key = tuple(calls)
        if any(isinstance(call.block, str) for call in key):
            raise ValueError("BlockViews reads views pinned to a block number only")
        shared = self._reads.get(key)
        loop = asyncio.get_running_loop()
        if shared is not None and (shared.done() or shared.get_loop() is loop):
            self._reads.move_to_end(key)
        else:  # none yet, or one left pending by an event loop that has ended
            shared = self._reads[key] = loop.create_task(read_views(self._provider, key))
            shared.add_done_callback(partial(self._settled, key))
            while len(self._reads) > self._size:
                self._reads.popitem(last=False)
        if shared.done():
            return list(shared.result())
        return list(await asyncio.shield(shared))

    def _settled(self, key: tuple[ViewCall, ...], read: asyncio.Future[list[Any]]) -> None:
        if (read.cancelled() or read.exception() is not None) and self._reads.get(key) is read:
            del self._reads[key]
