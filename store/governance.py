"""Persistence owned by governance: every timelock proposal made through ``creditmesh admin`` (chain, operation
id, calls, proposer, transaction hashes, state), and every governance transaction our keys send directly, outside
the Timelock (the guardian's pause: who, chain, contract, transaction, reason), so that auditors can reconcile
governance with the chain. Each save is an audit log entry in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from compliance.audit import AuditKind
from store.base import Base
from store.compliance import SqlAuditLog
from store.records import columns, from_row
from store.types import UtcDateTime
from store.unreadable import SHAPE, mapping_of_text, read_naming_unreadable, shape_checked


def _calls_shape(value: Any) -> str | None:
    """A proposal's calls as its readers take them: a list of objects, each with a target (text), a value (an
    integer, or its decimal text) and data (text)."""
    for call in value if isinstance(value, list) else [None]:
        if not (
            isinstance(call, dict)
            and isinstance(call.get("target"), str)
            and isinstance(call.get("data"), str)
            and (type(call.get("value")) is int or (isinstance(call.get("value"), str) and call["value"].isdigit()))
        ):
            return "not a list of calls, each an object with a target, a value and data"
    return None


class GovernanceProposalRow(Base):
    """One timelock operation on one chain. ``calls`` holds ``{"target", "value", "data", "decoded"}`` per call."""

    __tablename__ = "governance_proposals"
    __table_args__ = (UniqueConstraint("chain_id", "timelock", "operation_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    chain_name: Mapped[str] = mapped_column(String(64))
    timelock: Mapped[str] = mapped_column(String(42))
    operation_id: Mapped[str] = mapped_column(String(66))
    calls: Mapped[list[dict[str, Any]]] = mapped_column(JSON, info={SHAPE: _calls_shape})
    salt: Mapped[str] = mapped_column(String(66))
    predecessor: Mapped[str] = mapped_column(String(66))
    delay_seconds: Mapped[int] = mapped_column(BigInteger)
    proposer: Mapped[str] = mapped_column(String(42))
    safe_tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    # action (schedule, execute, cancel) → tx hash, of the latest scheduling; an operation cancelled and scheduled
    # again keeps each earlier scheduling's numbered: schedule.1, cancel.1 (the first), schedule.2, ..., with that
    # scheduling's delay and proposer (delay.1 = "2", proposer.1 = "0x…"): the columns hold the latest's
    tx_hashes: Mapped[dict[str, str]] = mapped_column(JSON, info={SHAPE: mapping_of_text})
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    """A proposal as persisted (plain values; no ORM object leaves the repository)."""

    chain_id: int
    chain_name: str
    timelock: str
    operation_id: str
    calls: list[dict[str, Any]]
    salt: str
    predecessor: str
    delay_seconds: int
    proposer: str
    state: str
    tx_hashes: dict[str, str] = field(default_factory=dict)
    safe_tx_hash: str | None = None


class GovernanceActionRow(Base):
    """One call a governance key made directly on one contract, not through the Timelock (the guardian's pause)."""

    __tablename__ = "governance_actions"
    __table_args__ = (UniqueConstraint("chain_id", "tx_hash", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    chain_name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))  # the function called: pause, pauseLiquidations
    contract: Mapped[str] = mapped_column(String(64))  # the deployments record's name of the contract
    address: Mapped[str] = mapped_column(String(42))
    sender: Mapped[str] = mapped_column(String(42))
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """A direct governance call as persisted."""

    chain_id: int
    chain_name: str
    action: str
    contract: str
    address: str
    sender: str
    tx_hash: str
    block_number: int
    reason: str | None = None


class SqlProposalRepository:
    """Proposals in SQL; the unit of work commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _row(self, chain_id: int, timelock: str, operation_id: str) -> GovernanceProposalRow | None:
        query = select(GovernanceProposalRow).where(
            GovernanceProposalRow.chain_id == chain_id,
            GovernanceProposalRow.timelock == timelock,
            GovernanceProposalRow.operation_id == operation_id,
        )
        row = read_naming_unreadable(
            self.session, GovernanceProposalRow, lambda: self.session.scalars(query).one_or_none()
        )
        return None if row is None else shape_checked(row)

    def _audit(self, record: ProposalRecord, now: datetime, **more: Any) -> None:
        SqlAuditLog(self.session).append(
            AuditKind.GOVERNANCE,
            f"{record.chain_id}:{record.operation_id}",
            {
                "chainId": record.chain_id,
                "timelock": record.timelock,
                "operationId": record.operation_id,
                "state": record.state,
                "proposer": record.proposer,
                "txHashes": dict(record.tx_hashes),
                "safeTxHash": record.safe_tx_hash,
                # what the operation does, so that the hash chain covers it as it covers the state
                "calls": [{k: call.get(k) for k in ("target", "value", "data")} for call in record.calls],
                "salt": record.salt,
                "predecessor": record.predecessor,
                "delaySeconds": record.delay_seconds,
            }
            | more,
            now,
        )

    def cancelled(self, record: ProposalRecord) -> bool:
        """Record that our canceller cancelled ``record``'s operation: the proposal updated when it is ours (True);
        for an operation none of ours scheduled, an audit entry saying so and no proposal (False), so that
        reconciliation goes on reporting the operation as scheduled outside our commands."""
        if self._row(record.chain_id, record.timelock, record.operation_id) is not None:
            self.save(record)
            return True
        self._audit(record, datetime.now(UTC), scheduledOutside=True)
        return False

    def save(self, record: ProposalRecord) -> None:
        """Insert the proposal, or update its state, transaction hashes and Safe hash (merged, never dropped: an
        operation scheduled again after its cancellation keeps the earlier scheduling's transactions, delay and
        proposer numbered, ``_merged``, and takes the new scheduling's delay and proposer); the audit log records
        each save in the same transaction."""
        now = datetime.now(UTC)
        self._audit(record, now)
        row = self._row(record.chain_id, record.timelock, record.operation_id)
        if row is None:
            fresh = columns(record) | {"tx_hashes": dict(record.tx_hashes)}
            self.session.add(GovernanceProposalRow(**fresh, created_at=now, updated_at=now))
            return
        row.state = record.state
        again = _schedules_again(row.tx_hashes, record.tx_hashes)
        row.tx_hashes = _merged(
            row.tx_hashes, record.tx_hashes, {"delay": str(row.delay_seconds), "proposer": row.proposer}
        )
        if again:  # the delay is no part of the operation id, and another proposer may schedule it: the new round's
            row.delay_seconds, row.proposer = record.delay_seconds, record.proposer
        row.safe_tx_hash = record.safe_tx_hash or row.safe_tx_hash
        row.updated_at = now

    def get(self, chain_id: int, timelock: str, operation_id: str) -> ProposalRecord | None:
        row = self._row(chain_id, timelock, operation_id)
        return None if row is None else _proposal(row)

    def all(self, chain_id: int | None = None) -> list[ProposalRecord]:
        query = select(GovernanceProposalRow).order_by(GovernanceProposalRow.id)
        if chain_id is not None:
            query = query.where(GovernanceProposalRow.chain_id == chain_id)
        rows = read_naming_unreadable(self.session, GovernanceProposalRow, lambda: list(self.session.scalars(query)))
        return [_proposal(shape_checked(row)) for row in rows]


def _merged(kept: dict[str, str], new: dict[str, str], kept_values: dict[str, str]) -> dict[str, str]:
    """``new`` over ``kept``; when ``new`` schedules again (the same calls and salt after a cancellation: the same
    operation id, another ``schedule`` transaction), ``kept``'s latest round is numbered first (``schedule.1``,
    ``cancel.1``; the next round's ``.2``) with that round's ``kept_values`` (its ``delay`` and ``proposer``: the
    row's columns, which take the new round's), so that its cancel is not taken for the new scheduling's and an
    auditor keeps every scheduling and cancellation of the id and the delay and proposer of each. Merged into one
    set, the first round's cancel stood beside the second scheduling, and reconciliation reported the operation as
    recorded otherwise."""
    if not _schedules_again(kept, new):
        return {**kept, **new}
    number = 1 + sum(1 for key in kept if key.startswith("schedule."))
    latest = {action: tx for action, tx in kept.items() if "." not in action} | kept_values
    earlier = {f"{action}.{number}": value for action, value in latest.items()}
    return {**{key: tx for key, tx in kept.items() if "." in key}, **earlier, **new}


def _schedules_again(kept: dict[str, str], new: dict[str, str]) -> bool:
    scheduled = new.get("schedule")
    return scheduled is not None and kept.get("schedule") not in (None, scheduled)


def _proposal(row: GovernanceProposalRow) -> ProposalRecord:
    """The record with its own copies of the row's JSON documents (the row's stay the session's)."""
    record = from_row(ProposalRecord, row)
    return replace(record, calls=list(record.calls), tx_hashes=dict(record.tx_hashes))


class SqlActionRepository:
    """Direct governance calls in SQL, each audited in the same transaction; the unit of work commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, record: ActionRecord) -> None:
        now = datetime.now(UTC)
        SqlAuditLog(self.session).append(
            AuditKind.GOVERNANCE,
            f"{record.chain_id}:{record.tx_hash}",
            {
                "chainId": record.chain_id,
                "action": record.action,
                "contract": record.contract,
                "address": record.address,
                "sender": record.sender,
                "txHash": record.tx_hash,
                "blockNumber": record.block_number,
                "reason": record.reason,
            },
            now,
        )
        self.session.add(GovernanceActionRow(**columns(record), created_at=now))

    def all(self, chain_id: int | None = None) -> list[ActionRecord]:
        query = select(GovernanceActionRow).order_by(GovernanceActionRow.id)
        if chain_id is not None:
            query = query.where(GovernanceActionRow.chain_id == chain_id)
        return [from_row(ActionRecord, row) for row in self.session.scalars(query)]
