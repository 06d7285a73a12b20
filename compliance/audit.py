"""The audit log: append-only and hash-chained, its head anchored on-chain (``compliance.audit_anchor``).

An entry says what the platform did — a compliance or risk decision (chaining the decision's own record hash), an
accept, a governance action, a key issued, an erasure, a reconciliation run — and is written in the transaction that
does it, unsealed. *Sealing* then gives the unsealed entries, in the order they were written, the next sequence
numbers and chains them: each entry's hash is keccak256 of the RFC 8785 canonical JSON of its body, which holds its
sequence number and the previous entry's hash (``GENESIS_HASH`` before the first). Writers never wait for each
other (no lock on the request path); only sealing takes the head's lock.

``verify`` walks the sealed entries in sequence order and names the first that does not hold: an entry whose hash
does not recompute (altered, or moved to another position), a gap in the numbering (deleted), an entry whose
previous hash is not its predecessor's (inserted, deleted or reordered before it); then it checks every on-chain
anchor (sequence number → head hash) against the entry at that position, which catches a log rewritten with
recomputed hashes. Everything here is pure: the store reads and writes, the chain reads the anchors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from compliance.canonical import JsonValue, canonical_json, keccak256, to_json_value

GENESIS_HASH = "0x" + "00" * 32


class AuditKind(StrEnum):
    COMPLIANCE_DECISION = "compliance-decision"
    RISK_DECISION = "risk-decision"
    ACCEPT = "accept"
    GOVERNANCE = "governance"
    KEY_ISSUED = "key-issued"
    KEY_REVOKED = "key-revoked"
    KEY_EXPIRY_SET = "key-expiry-set"
    PII_ERASURE = "pii-erasure"
    RECONCILIATION = "reconciliation"
    RECONCILIATION_FAILED = "reconciliation-failed"
    FUNDING_SETTLEMENT = "funding-settlement"
    PROVIDER_REGISTERED = "provider-registered"
    PROVIDER_CHANGED = "provider-changed"
    PROVIDER_DEREGISTERED = "provider-deregistered"


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """What a transaction appends: the sealer numbers and chains it later, in the order of ``id``."""

    id: int
    kind: str
    subject: str
    data: Mapping[str, Any]
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A sealed entry as stored (``entry_hash`` as stored, not recomputed: ``verify`` recomputes it)."""

    seq: int
    kind: str
    subject: str
    data: Mapping[str, Any]
    recorded_at: datetime
    prev_hash: str
    entry_hash: str
    #: why the stored entry cannot be read (a value its column cannot hold: altered outside the log), else None; its
    #: ``data`` and ``recorded_at`` are then placeholders and its hash is not recomputed
    unreadable: str | None = None

    def body(self) -> dict[str, Any]:
        return entry_body(self.seq, self.prev_hash, self.kind, self.subject, self.data, self.recorded_at)

    def computed_hash(self) -> str:
        return "0x" + keccak256(canonical_json(self.body())).hex()


def entry_body(
    seq: int, prev_hash: str, kind: str, subject: str, data: Mapping[str, Any], recorded_at: datetime
) -> dict[str, Any]:
    return {
        "seq": seq,
        "prevHash": prev_hash,
        "kind": kind,
        "subject": subject,
        "data": dict(data),
        "recordedAt": recorded_at,
    }


def audit_data(value: Mapping[str, Any]) -> dict[str, JsonValue]:
    """``value`` reduced to what canonical JSON and a JSON column both keep exactly (Decimal → string, bytes → hex;
    floats refused)."""
    reduced = to_json_value(dict(value))
    assert isinstance(reduced, dict)
    return reduced


def seal(head: tuple[int, str] | None, pending: Sequence[PendingEntry]) -> list[tuple[int, AuditEntry]]:
    """Number and chain ``pending`` (in ``id`` order) after ``head`` (the last sealed entry's sequence number and
    hash; None for an empty log). Returns (pending id, sealed entry) pairs."""
    seq, prev = head if head is not None else (0, GENESIS_HASH)
    sealed: list[tuple[int, AuditEntry]] = []
    for item in sorted(pending, key=lambda p: p.id):
        seq += 1
        body = entry_body(seq, prev, item.kind, item.subject, item.data, item.recorded_at)
        entry_hash = "0x" + keccak256(canonical_json(body)).hex()
        sealed.append(
            (item.id, AuditEntry(seq, item.kind, item.subject, dict(item.data), item.recorded_at, prev, entry_hash))
        )
        prev = entry_hash
    return sealed


@dataclass(frozen=True, slots=True)
class Anchor:
    """An on-chain anchor: ``AuditAnchor.Anchored(seq, head)`` on one chain."""

    chain_name: str
    seq: int
    head: str
    tx_hash: str
    block_number: int


@dataclass(frozen=True, slots=True)
class AuditProblem:
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.reason}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    entries: int
    head: str
    anchors_checked: int
    pending: int = 0
    problems: tuple[AuditProblem, ...] = field(default=())
    runs_checked: int = 0  # finished reconciliation runs checked against their digest and their entry
    run_problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems and not self.run_problems

    @property
    def first_bad(self) -> AuditProblem | None:
        return self.problems[0] if self.problems else None


def verify(
    entries: Iterable[AuditEntry],
    anchors: Iterable[Anchor] = (),
    pending: int = 0,
    sealed_head: tuple[int, str] | None = None,
) -> VerifyReport:
    """Check the chain of ``entries`` (in any order: they are sorted by sequence number), every anchor, and the
    head the sealer recorded last (``sealed_head``: its sequence number and hash).

    The first problem of the chain walk is the first bad entry (later ones follow from it and are not listed);
    anchor problems follow, one per anchor that does not match, then the sealed head's. Entries sealed after the last
    anchor and deleted from the end leave a chain that walks; the sealed head still names the last one."""
    ordered = sorted(entries, key=lambda e: e.seq)
    problems: list[AuditProblem] = []
    prev_hash, expected = GENESIS_HASH, 1
    by_seq: dict[int, AuditEntry] = {}
    for entry in ordered:
        by_seq.setdefault(entry.seq, entry)
        if problems:
            continue
        if entry.seq != expected:
            missing = f"entry {expected} is missing" if entry.seq > expected else f"sequence number {entry.seq} twice"
            problems.append(AuditProblem(expected, f"{missing} (deleted or renumbered)"))
        elif entry.prev_hash != prev_hash:
            problems.append(
                AuditProblem(entry.seq, "its previous hash is not entry's before it (inserted, deleted or reordered)")
            )
        elif entry.unreadable is not None:
            problems.append(AuditProblem(entry.seq, f"unreadable (altered): {entry.unreadable}"))
        elif entry.computed_hash() != entry.entry_hash:
            problems.append(AuditProblem(entry.seq, "its contents do not match its hash (altered)"))
        prev_hash, expected = entry.entry_hash, entry.seq + 1
    checked, holds = 0, 0  # the last anchored entry found as anchored: every entry up to it is as it was
    for anchor in sorted(anchors, key=lambda a: (a.seq, a.chain_name)):
        checked += 1
        found = by_seq.get(anchor.seq)
        where = f"anchored on {anchor.chain_name} in tx {anchor.tx_hash}"
        if found is None:
            problems.append(AuditProblem(anchor.seq, f"{where}, but the log has no such entry (deleted)"))
        elif found.entry_hash != anchor.head or found.unreadable is not None or found.computed_hash() != anchor.head:
            # a rewrite with every later hash recomputed walks: the anchor tells only that an entry up to it changed
            since = f"entry {holds} is as anchored" if holds else "no earlier anchor holds"
            detail = f"{where} as {anchor.head}; the log's entry differs (rewritten: one of entries {holds + 1} to "
            problems.append(AuditProblem(anchor.seq, f"{detail}{anchor.seq} was changed; {since})"))
        elif all(problem.seq > anchor.seq for problem in problems):  # the chain up to it walked too
            holds = max(holds, anchor.seq)
    head = ordered[-1].entry_hash if ordered else GENESIS_HASH
    last = ordered[-1].seq if ordered else 0
    if sealed_head is not None:  # read before the entries: a seal between the two reads only adds entries after it
        seq, sealed_hash = sealed_head
        found = by_seq.get(seq)
        if found is None or found.entry_hash != sealed_hash:
            what = "deleted from the end" if found is None else "rewritten"
            detail = f"the sealer's head is entry {seq} {sealed_hash}; the log ends at entry {last} ({what})"
            problems.append(AuditProblem(seq, detail))
    return VerifyReport(len(ordered), head, checked, pending, tuple(problems))


class AuditLog(Protocol):
    """The store's side of the log (``store.compliance.SqlAuditLog``; ``InMemoryAuditLog`` for unit tests)."""

    def append(self, kind: AuditKind, subject: str, data: Mapping[str, Any], now: datetime) -> None:
        """Write an unsealed entry in the caller's transaction."""
        ...

    def seal(self) -> int:
        """Number and chain every unsealed entry; returns how many were sealed."""
        ...

    def entries(self) -> list[AuditEntry]: ...


class InMemoryAuditLog:
    def __init__(self) -> None:
        self.pending: list[PendingEntry] = []
        self.sealed: list[AuditEntry] = []

    def append(self, kind: AuditKind, subject: str, data: Mapping[str, Any], now: datetime) -> None:
        self.pending.append(PendingEntry(len(self.pending) + len(self.sealed) + 1, kind.value, subject, data, now))

    def seal(self) -> int:
        head = (self.sealed[-1].seq, self.sealed[-1].entry_hash) if self.sealed else None
        done = seal(head, self.pending)
        self.sealed.extend(entry for _, entry in done)
        self.pending.clear()
        return len(done)

    def entries(self) -> list[AuditEntry]:
        return list(self.sealed)
