"""OpenZeppelin 5 ``TimelockController`` operations, for any contracts it governs.

An operation is one call or a batch of calls with a predecessor and a salt; its id is OpenZeppelin's
``hashOperation`` (one call) or ``hashOperationBatch`` (a batch), computed here with eth-abi so that a proposal's
id is known before anything is sent. ``schedule_call`` / ``execute_call`` / ``cancel_call`` build the Timelock's
calldata (for a proposer's own transaction or for a Safe's); ``read_operations`` rebuilds every operation from the
Timelock's events (``CallScheduled``, ``CallSalt``, ``CallExecuted``, ``Cancelled``) with its state from chain:
pending (waiting out its delay), ready, done, or cancelled."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cache
from typing import Any

from eth_abi.abi import encode
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract

from chain.artifacts import load_artifact
from chain.errors import ChainError
from chain.transactions import Call
from chain.types import Wei

TIMELOCK_ARTIFACT = "TimelockController"
ZERO_BYTES32 = b"\x00" * 32


class TimelockError(ChainError):
    """A timelock operation that cannot be built or does not exist."""


class OperationState(StrEnum):
    """OpenZeppelin's ``OperationState`` (Unset, Waiting, Ready, Done), plus ``cancelled``: unset after a
    ``Cancelled`` event."""

    UNSET = "unset"
    PENDING = "pending"
    READY = "ready"
    DONE = "done"
    CANCELLED = "cancelled"


_CHAIN_STATES = (OperationState.UNSET, OperationState.PENDING, OperationState.READY, OperationState.DONE)


@dataclass(frozen=True, slots=True)
class TimelockCall:
    """One call the Timelock makes: ``target.call{value}(data)``."""

    target: ChecksumAddress
    data: bytes
    value: int = 0


@dataclass(frozen=True, slots=True)
class TimelockOperation:
    """A proposal as the Timelock sees it. One call is scheduled with ``schedule``; more with ``scheduleBatch``."""

    calls: tuple[TimelockCall, ...]
    salt: bytes = ZERO_BYTES32
    predecessor: bytes = ZERO_BYTES32
    as_batch: bool = False  # one call scheduled through scheduleBatch (its id is then hashOperationBatch's)

    def __post_init__(self) -> None:
        if not self.calls:
            raise TimelockError("a timelock operation needs at least one call")
        if len(self.salt) != 32 or len(self.predecessor) != 32:
            raise TimelockError("salt and predecessor are 32 bytes each")

    @property
    def batch(self) -> bool:
        return self.as_batch or len(self.calls) > 1

    @property
    def operation_id(self) -> bytes:
        """OpenZeppelin's ``hashOperation`` / ``hashOperationBatch``."""
        if self.batch:
            encoded = encode(
                ["address[]", "uint256[]", "bytes[]", "bytes32", "bytes32"],
                [
                    [call.target for call in self.calls],
                    [call.value for call in self.calls],
                    [call.data for call in self.calls],
                    self.predecessor,
                    self.salt,
                ],
            )
        else:
            call = self.calls[0]
            encoded = encode(
                ["address", "uint256", "bytes", "bytes32", "bytes32"],
                [call.target, call.value, call.data, self.predecessor, self.salt],
            )
        return keccak(encoded)

    def _arguments(self) -> list[Any]:
        if self.batch:
            return [
                [call.target for call in self.calls],
                [call.value for call in self.calls],
                [call.data for call in self.calls],
                self.predecessor,
                self.salt,
            ]
        call = self.calls[0]
        return [call.target, call.value, call.data, self.predecessor, self.salt]

    @property
    def total_value(self) -> int:
        return sum(call.value for call in self.calls)


@cache
def _abi_only() -> type[Contract]:
    return Web3().eth.contract(abi=load_artifact(TIMELOCK_ARTIFACT).abi)


def timelock_contract(w3: Web3, address: ChecksumAddress) -> Contract:
    return w3.eth.contract(address=address, abi=load_artifact(TIMELOCK_ARTIFACT).abi)


def _encode(function: str, arguments: list[Any]) -> bytes:
    return bytes.fromhex(_abi_only().encode_abi(function, arguments)[2:])


def schedule_call(timelock: ChecksumAddress, operation: TimelockOperation, delay: int) -> Call:
    """The proposer's ``schedule`` / ``scheduleBatch`` transaction."""
    function = "scheduleBatch" if operation.batch else "schedule"
    return Call(to=timelock, data=_encode(function, [*operation._arguments(), delay]))


def execute_call(timelock: ChecksumAddress, operation: TimelockOperation) -> Call:
    """The executor's ``execute`` / ``executeBatch`` transaction (sends the operation's total value)."""
    function = "executeBatch" if operation.batch else "execute"
    return Call(to=timelock, data=_encode(function, operation._arguments()), value=Wei(operation.total_value))


def cancel_call(timelock: ChecksumAddress, operation_id: bytes) -> Call:
    """The canceller's ``cancel(id)`` transaction."""
    return Call(to=timelock, data=_encode("cancel", [operation_id]))


def describe_call(data: bytes) -> str:
    """What calldata makes the Timelock do, in a line: ``scheduleBatch of operation 0x… (delay 2 s)``, ``cancel of
    operation 0x…``, another function's name, or the selector of none of its functions."""
    try:
        function, arguments = _abi_only().decode_function_input(data)
    except ValueError:
        return f"0x{data[:4].hex()}, no function of the Timelock"
    name = str(function.fn_name)
    if name == "cancel":
        return f"cancel of operation 0x{bytes(arguments['id']).hex()}"
    if name not in ("schedule", "scheduleBatch"):
        return name
    if name == "schedule":
        targets, values, payloads = [arguments["target"]], [arguments["value"]], [arguments["data"]]
    else:
        targets, values, payloads = arguments["targets"], arguments["values"], arguments["payloads"]
    try:
        operation = TimelockOperation(
            calls=tuple(TimelockCall(t, bytes(d), int(v)) for t, v, d in zip(targets, values, payloads, strict=True)),
            salt=bytes(arguments["salt"]),
            predecessor=bytes(arguments["predecessor"]),
            as_batch=name == "scheduleBatch",
        )
    except (TimelockError, ValueError):  # no calls, or targets and values of different lengths
        return f"{name} of no valid operation"
    return f"{name} of operation 0x{operation.operation_id.hex()} (delay {arguments['delay']} s)"


@dataclass(frozen=True, slots=True)
class ScheduledOperation:
    """An operation as the Timelock's events and state show it: its latest scheduling."""

    operation_id: bytes  # the events' id (a one-call batch's is hashOperationBatch's)
    operation: TimelockOperation
    state: OperationState
    ready_at: int  # unix seconds at which it may execute (0 once done or cancelled)
    delay: int
    scheduled_tx: str
    scheduled_block: int
    executed_tx: str | None = None
    cancelled_tx: str | None = None


def operation_state(timelock: Contract, operation_id: bytes, *, cancelled: bool = False) -> OperationState:
    state = _CHAIN_STATES[int(timelock.functions.getOperationState(operation_id).call())]
    return OperationState.CANCELLED if cancelled and state is OperationState.UNSET else state


#: blocks one ``eth_getLogs`` spans when the Timelock's events are read (hosted RPC providers limit the range)
LOG_RANGE = 10_000
_OPERATION_EVENTS = ("CallScheduled", "CallSalt", "CallExecuted", "Cancelled")


def timelock_logs(timelock: Contract, from_block: int) -> dict[str, list[Any]]:
    """The Timelock's operation events since ``from_block``, by event name, in chain order: one ``eth_getLogs`` of
    its address per ``LOG_RANGE`` blocks (four reads of the whole history in one range each were refused by an RPC
    that limits the range, and with them ``list``, ``execute`` and ``cancel``)."""
    events = {name: getattr(timelock.events, name)() for name in _OPERATION_EVENTS}
    by_topic = {Web3.to_bytes(hexstr=event.topic): name for name, event in events.items()}
    found: dict[str, list[Any]] = {name: [] for name in _OPERATION_EVENTS}
    head = int(timelock.w3.eth.block_number)
    for start in range(from_block, head + 1, LOG_RANGE):
        end = min(start + LOG_RANGE - 1, head)
        for raw in timelock.w3.eth.get_logs({"address": timelock.address, "fromBlock": start, "toBlock": end}):
            name = by_topic.get(bytes(raw["topics"][0])) if raw["topics"] else None
            if name is not None:
                found[name].append(events[name].process_log(raw))
    return found


def read_operations(timelock: Contract, from_block: int = 0) -> list[ScheduledOperation]:
    """Every operation scheduled on ``timelock`` since ``from_block``, oldest first, rebuilt from its events.

    An operation cancelled and then scheduled again (the same calls and salt: the same id) is shown as its latest
    scheduling, rebuilt from that one transaction's ``CallScheduled`` events; a cancellation before it is not its."""
    logs_of = timelock_logs(timelock, from_block)
    schedulings: dict[tuple[bytes, str], list[Any]] = {}
    for log in logs_of["CallScheduled"]:
        schedulings.setdefault((_id(log), _tx(log)), []).append(log)
    latest = {operation_id: logs for (operation_id, _), logs in schedulings.items()}  # logs come oldest first
    salts = {(_id(log), _tx(log)): bytes(log["args"]["salt"]) for log in logs_of["CallSalt"]}
    executed = {_id(log): _tx(log) for log in logs_of["CallExecuted"]}
    cancels = {_id(log): log for log in logs_of["Cancelled"]}  # the last of each id
    found = []
    for operation_id, logs in latest.items():
        first = min(logs, key=lambda log: int(log["args"]["index"]))
        cancel = cancels.get(operation_id)
        cancelled_tx = _tx(cancel) if cancel is not None and _position(cancel) > _position(logs[-1]) else None
        state = operation_state(timelock, operation_id, cancelled=cancelled_tx is not None)
        timestamp = int(timelock.functions.getTimestamp(operation_id).call())
        found.append(
            ScheduledOperation(
                operation_id=operation_id,
                operation=_operation(operation_id, logs, salts.get((operation_id, _tx(first)), ZERO_BYTES32)),
                state=state,
                ready_at=timestamp if timestamp > 1 else 0,
                delay=int(first["args"]["delay"]),
                scheduled_tx=_tx(first),
                scheduled_block=int(first["blockNumber"]),
                executed_tx=executed.get(operation_id),
                cancelled_tx=cancelled_tx,
            )
        )
    found.sort(key=lambda item: item.scheduled_block)
    return found


def _operation(operation_id: bytes, logs: list[Any], salt: bytes) -> TimelockOperation:
    """One scheduling's calls, in their index order."""
    ordered = sorted(logs, key=lambda log: int(log["args"]["index"]))
    operation = TimelockOperation(
        calls=tuple(
            TimelockCall(
                target=to_checksum_address(log["args"]["target"]),
                data=bytes(log["args"]["data"]),
                value=int(log["args"]["value"]),
            )
            for log in ordered
        ),
        salt=salt,
        predecessor=bytes(ordered[0]["args"]["predecessor"]),
    )
    if operation.operation_id != operation_id and len(ordered) == 1:
        # a batch of one call was scheduled with scheduleBatch: its id is hashOperationBatch's
        operation = replace(operation, as_batch=True)
    return operation


def _position(log: Any) -> tuple[int, int]:
    return int(log["blockNumber"]), int(log["logIndex"])


def _id(log: Any) -> bytes:
    return bytes(log["args"]["id"])


def _tx(log: Any) -> str:
    return str(log["transactionHash"].to_0x_hex())
