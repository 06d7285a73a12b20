"""An open intent as its manager follows it, and how a node's answer to a broadcast is read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chain.errors import ChainError
from chain.fees import Fees
from chain.types import Wei
from store.chain import AttemptRecord, MinedUpdate

if TYPE_CHECKING:
    from chain.transactions._values import Receipt


@dataclass
class _Tracked:
    """An open intent as this process follows it."""

    key: str
    to: str | None
    data: bytes
    value: int
    nonce: int
    attempts: list[AttemptRecord]
    accepted_at: float | None = None  # when a node last accepted the newest attempt (monotonic): the rebroadcast clock
    # When a node first accepted the newest attempt: the clock of the fee bump, which a rebroadcast does not restart
    # (a node answering "already known" to every rebroadcast of a transaction it no longer holds kept postponing it).
    sent_at: float | None = None
    unsent: bool = True
    mined: MinedUpdate | None = None
    nonce_used_seen: bool = False
    # the node's pending count when it last found this one stuck above it: it waits behind a missing nonce, unbumped
    waits_behind: int | None = None
    broadcasting: bool = False  # a broadcast of the newest attempt is on its way: the watcher does not add another
    # The attempts a node has accepted (by hash), in this process or, for a resumed intent, as the store recorded: a
    # node's refusal of one of them again is no proof it never reached a mempool, so it never fails the intent.
    accepted: set[str] = field(default_factory=set)

    @property
    def current(self) -> AttemptRecord:
        return self.attempts[-1]

    @property
    def fees(self) -> Fees:
        return Fees(Wei(self.current.max_fee_per_gas), Wei(self.current.max_priority_fee_per_gas))


@dataclass
class _Round:
    """What one round of the watcher learned, written together (``SqlChainStore.record_round``)."""

    mined: list[MinedUpdate] = field(default_factory=list)
    unmined: list[str] = field(default_factory=list)
    outcomes: list[tuple[str, str, str | None]] = field(default_factory=list)
    settled: list[tuple[_Tracked, Receipt | ChainError]] = field(default_factory=list)
    #: the blocks whose receipts the round read, by number: their hashes (empty for a block with no transaction)
    scanned: dict[int, str] = field(default_factory=dict)


class _TakenOver(ChainError):
    """Another manager claimed an intent this one followed (this one stalled past its lease): let it go."""


class _Broadcast:
    ACCEPTED, UNDERPRICED, NONCE_USED, REJECTED, UNAVAILABLE, HELD, TAKEN_OVER = range(7)


_KNOWN = ("already known", "known transaction", "already imported", "already exists", "already in")


_NONCE_USED = ("nonce too low", "nonce has already been used", "oldnonce", "nonce is too low")


_UNDERPRICED = ("underpriced", "replacement transaction")


def _hex(value: int) -> str:
    return hex(value)
