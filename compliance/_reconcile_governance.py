"""Reconciliation of governance: the Timelock's operations with our proposals, and role changes and pauses with the
governance actions our keys sent directly, the deployer's wiring or a Timelock execution."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from compliance._reconcile_values import (
    ROLE_EVENTS,
    Category,
    ChainResult,
    ChainScope,
    Fact,
    Item,
    ProposalRecord,
    Records,
    TxParties,
    in_scope,
    item,
)

_STATE_AFTER = {"CallScheduled": "pending", "CallExecuted": "done", "Cancelled": "cancelled"}
_ACTION_OF = {"CallScheduled": "schedule", "CallExecuted": "execute", "Cancelled": "cancel"}
_SETTLED = ("waiting", "ready", "pending")


def match_proposals(
    result: ChainResult,
    scope: ChainScope,
    timelock: dict[str, list[Fact]],
    records: Records,
    salts: Mapping[str, str] | None = None,
    senders: Mapping[str, TxParties] | None = None,
) -> None:
    """``salts``: each operation's ``CallSalt`` (none: a zero salt); ``senders``: the parties of each scheduling
    transaction, by hash (lower case)."""
    proposals = {p.operation_id.lower(): p for p in records.proposals}
    for operation_id, facts in timelock.items():
        proposal = proposals.get(operation_id)
        first = facts[0]
        if proposal is None:
            result.add(
                item(
                    scope,
                    Category.ONCHAIN_NOT_RECORDED,
                    operation_id,
                    str(first.event),
                    "a Timelock operation no governance proposal of ours records",
                    first,
                )
            )
            continue
        wrong = _recorded_otherwise(proposal, facts)
        wrong.extend(_kept_otherwise(proposal, facts, (salts or {}).get(operation_id), senders or {}, scope.timelock))
        if wrong:  # reported, and the state is still checked: one field recorded otherwise hides no other finding
            detail = "; ".join(wrong)
            result.add(item(scope, Category.PROPOSAL_MISMATCH, operation_id, "proposal", detail, first, operation_id))
        state = _STATE_AFTER[str(facts[-1].event)]
        recorded = "pending" if proposal.state in _SETTLED else proposal.state
        if state != recorded and scope.at_head:  # before the head, a later block may have moved it on
            result.add(
                item(
                    scope,
                    Category.STATUS_MISMATCH,
                    operation_id,
                    str(facts[-1].event),
                    f"proposal recorded {proposal.state}, the Timelock says {state}",
                    facts[-1],
                    operation_id,
                )
            )
        elif not wrong:
            result.matched(len(facts))
    if not scope.full:
        return
    for operation_id, proposal in proposals.items():
        if operation_id not in timelock and proposal.tx_hashes.get("schedule"):
            result.add(
                item(
                    scope,
                    Category.RECORDED_NOT_ONCHAIN,
                    operation_id,
                    "proposal",
                    f"recorded as scheduled in {proposal.tx_hashes['schedule']}; the Timelock never scheduled it",
                    None,
                    operation_id,
                )
            )


def _recorded_otherwise(proposal: ProposalRecord, facts: list[Fact]) -> list[str]:
    """Where the proposal's record differs from the Timelock's events: a call scheduled (target, value, data, by its
    index) other than the recorded one, or a schedule, execute or cancel transaction other than the recorded one.

    An operation cancelled and scheduled again (the same calls and salt: the same id) has a scheduling per round:
    the last round's transactions are the record's ``schedule`` / ``execute`` / ``cancel``, each earlier round's
    are kept numbered (``schedule.1``, ``cancel.1``, ...; ``store.governance``), and an earlier round's transaction
    must be one of those. A record written before rounds were kept (its hashes merged into one set) has no numbered
    ones: only its last round's transactions are compared then. Calls are compared in every round."""
    wrong = []
    rounds = _rounds(facts)
    earlier = _earlier_hashes(proposal)
    for number, round_facts in enumerate(rounds, 1):
        last = number == len(rounds)
        for fact in round_facts:
            if fact.event == "CallScheduled":
                wrong.extend(_call_differs(proposal, fact))
            action = _ACTION_OF[str(fact.event)]
            if last:
                recorded = proposal.tx_hashes.get(action)
                if recorded is not None and recorded.lower() != fact.tx_hash.lower():
                    wrong.append(f"{action} transaction: recorded {recorded}, on-chain {fact.tx_hash}")
            elif earlier and fact.tx_hash.lower() not in earlier.get(action, set()):
                kept = ", ".join(sorted(earlier.get(action, ()))) or "none"
                wrong.append(f"{action} transaction of an earlier scheduling: recorded {kept}, on-chain {fact.tx_hash}")
    scheduled = [f for f in rounds[-1] if f.event == "CallScheduled"] if rounds else []
    if scheduled and len(proposal.calls) != len({f.uint("index") for f in scheduled}):
        wrong.append(f"{len(proposal.calls)} calls recorded")
    return list(dict.fromkeys(wrong))


ZERO_BYTES32 = "0x" + "00" * 32


def _kept_otherwise(
    proposal: ProposalRecord, facts: list[Fact], salt: str | None, senders: Mapping[str, TxParties], timelock: str
) -> list[str]:
    """What the record keeps so that governance can be reconciled — salt, predecessor, delay, proposer, each call's
    decoded text — where the chain (each scheduling's ``CallScheduled``, the operation's ``CallSalt``, the scheduling
    transaction) or the calldata decoded again says otherwise. The delay and the proposer may change from one
    scheduling of the operation to the next (neither is part of its id): the last scheduling's are the record's
    ``delay_seconds`` and ``proposer``, an earlier one's are kept numbered with its transactions (``delay.1``,
    ``proposer.1``; ``store.governance``). A value the record does not hold is not compared."""
    rounds = [[f for f in facts if f.event == "CallScheduled"] for facts in _rounds(facts)]
    scheduled = [(number, found[0]) for number, found in enumerate(rounds, 1) if found]
    if not scheduled:
        return []
    wrong = []
    onchain_salt = salt or ZERO_BYTES32
    if proposal.salt is not None and proposal.salt.lower() != onchain_salt.lower():
        wrong.append(f"salt: recorded {proposal.salt}, on-chain {onchain_salt}")
    for number, first in scheduled:
        last = number == len(rounds)
        kept = _round_values(proposal, None if last else number)
        wrong.extend(_scheduling_otherwise(kept, first, senders, timelock, "" if last else f" (scheduling {number})"))
    for index, (call, again) in enumerate(zip(proposal.calls, proposal.decoded_again, strict=False)):
        recorded = call.get("decoded")
        if recorded is not None and recorded != again:
            wrong.append(f"call {index} decoded: recorded {recorded!r}, its calldata decodes as {again!r}")
    return wrong


@dataclass(frozen=True, slots=True)
class _RoundValues:
    predecessor: str | None
    delay_seconds: int | None
    proposer: str | None


def _round_values(proposal: ProposalRecord, number: int | None) -> _RoundValues:
    """What the record holds of one scheduling: the last (``number`` None) in its columns, an earlier one numbered
    beside its transactions (none for a record written before they were kept: not compared)."""
    if number is None:
        return _RoundValues(proposal.predecessor, proposal.delay_seconds, proposal.proposer)
    delay = proposal.tx_hashes.get(f"delay.{number}")
    return _RoundValues(
        None,  # part of the operation id: the same in every scheduling, compared once (the last)
        int(delay) if delay is not None and delay.isdigit() else None,
        proposal.tx_hashes.get(f"proposer.{number}"),
    )


def _scheduling_otherwise(
    kept: _RoundValues, first: Fact, senders: Mapping[str, TxParties], timelock: str, which: str
) -> list[str]:
    """Where one scheduling's first ``CallScheduled`` and transaction differ from what the record kept of it."""
    wrong = []
    predecessor = first.hex("predecessor") if "predecessor" in first.args else None
    if None not in (kept.predecessor, predecessor) and str(kept.predecessor).lower() != str(predecessor):
        wrong.append(f"predecessor{which}: recorded {kept.predecessor}, on-chain {predecessor}")
    delay = first.uint("delay") if "delay" in first.args else None
    if None not in (kept.delay_seconds, delay) and kept.delay_seconds != delay:
        wrong.append(f"delay{which}: recorded {kept.delay_seconds} s, on-chain {delay} s")
    parties = senders.get(first.tx_hash.lower())
    if kept.proposer is not None and parties is not None:
        proposer = parties.sender if parties.to.lower() == timelock.lower() else parties.to
        if kept.proposer.lower() != proposer.lower():
            wrong.append(f"proposer{which}: recorded {kept.proposer}, the scheduling transaction's is {proposer}")
    return wrong


def _rounds(facts: list[Fact]) -> list[list[Fact]]:
    """The operation's facts in rounds, chain order: a ``CallScheduled`` after a ``Cancelled`` starts a new one."""
    rounds: list[list[Fact]] = []
    for fact in facts:
        if not rounds or (fact.event == "CallScheduled" and rounds[-1][-1].event == "Cancelled"):
            rounds.append([])
        rounds[-1].append(fact)
    return rounds


def _earlier_hashes(proposal: ProposalRecord) -> dict[str, set[str]]:
    """The transactions of the record's earlier rounds by action (``cancel.1`` → ``cancel``), lower case."""
    earlier: dict[str, set[str]] = {}
    for key, tx_hash in proposal.tx_hashes.items():
        action, dot, _ = key.partition(".")
        if dot and action in _ACTION_OF.values():  # not a round's delay or proposer
            earlier.setdefault(action, set()).add(tx_hash.lower())
    return earlier


def _call_differs(proposal: ProposalRecord, fact: Fact) -> list[str]:
    index = fact.uint("index")
    onchain = (str(fact.args.get("target", "")).lower(), fact.uint("value"), fact.hex("data"))
    call = proposal.calls[index] if index < len(proposal.calls) else None
    ours = None if call is None else (str(call["target"]).lower(), int(call["value"]), str(call["data"]).lower())
    return [] if ours == onchain else [f"call {index}: recorded {_call(ours)}, scheduled {_call(onchain)}"]


def _call(call: tuple[str, int, str] | None) -> str:
    return "none" if call is None else f"{call[0]} value {call[1]} data {call[2][:18]}…"


def match_direct_actions(
    result: ChainResult,
    scope: ChainScope,
    facts: list[Fact],
    executed_in: set[str],
    records: Records,
    senders: Mapping[str, TxParties] | None = None,
) -> None:
    """Role changes and pauses: a governance action of ours in that transaction at that contract, the deployer's
    wiring, or the Timelock executing an operation (``LiquidationPauseChanged`` names no sender: its transaction
    must execute one); anything else is on-chain but not recorded. A recorded action with no such event in its
    transaction is recorded but not on-chain."""
    actions = {(a.tx_hash.lower(), a.address.lower()): a for a in records.actions}
    senders = senders or {}
    deployer, timelock = scope.deployer.lower(), scope.timelock.lower()
    until = scope.wiring_until if scope.wiring_until is not None else _renounced_at(facts, deployer)
    seen: set[tuple[str, str]] = set()
    for fact in facts:
        key = (fact.tx_hash.lower(), fact.address.lower())
        sender = str(fact.args.get("sender") or fact.args.get("account") or "").lower()
        wiring = bool(deployer) and sender == deployer and (until is None or fact.block_number <= until)
        if key in actions:
            seen.add(key)
            recorded = actions[key].sender
            sent_by = sender or _sent_by(fact, senders)
            if sent_by and recorded.lower() != sent_by:
                detail = f"sender: recorded {recorded}, on-chain {sent_by} ({fact.event})"
                result.add(item(scope, Category.FIELD_MISMATCH, fact.contract, str(fact.event), detail, fact))
            else:
                result.matched()
        elif wiring or (timelock and sender == timelock) or (not sender and fact.tx_hash.lower() in executed_in):
            result.matched()
        elif deployer and sender == deployer and until is not None:
            result.add(_after_handover(scope, fact, until))
        else:
            result.add(_unrecorded(scope, fact, sender))
    for key, action in actions.items():
        if key not in seen and in_scope(scope, action.block_number):
            result.add(
                item(
                    scope,
                    Category.RECORDED_NOT_ONCHAIN,
                    action.address,
                    action.action,
                    f"recorded as sent by {action.sender} in {action.tx_hash} (block {action.block_number}); the "
                    "chain has no such event there (never mined, or reorged away)",
                    None,
                    action.tx_hash,
                )
            )


def _sent_by(fact: Fact, senders: Mapping[str, TxParties]) -> str:
    """Who sent an event that names no sender (``LiquidationPauseChanged``): its transaction's sender, lower case;
    empty when the run did not read it."""
    parties = senders.get(fact.tx_hash.lower())
    return "" if parties is None else parties.sender.lower()


_ADMIN_ROLE = "0x" + "00" * 32  # AccessControl's DEFAULT_ADMIN_ROLE


def _renounced_at(facts: list[Fact], deployer: str) -> int | None:
    """The block of the deployer's last renounce of its admin role among ``facts`` (the deployment's handover, for a
    deployments record that does not say it); None when the run has none."""
    blocks = [
        fact.block_number
        for fact in facts
        if fact.event == "RoleRevoked"
        and fact.hex("role") == _ADMIN_ROLE
        and str(fact.args.get("account", "")).lower() == deployer
        and str(fact.args.get("sender", "")).lower() == deployer
    ]
    return max(blocks, default=None)


def _after_handover(scope: ChainScope, fact: Fact, until: int) -> Item:
    subject = str(fact.args.get("account")) if fact.event in ROLE_EVENTS else fact.contract
    what = f"role {fact.hex('role')} changed" if fact.event in ROLE_EVENTS else str(fact.event)
    detail = (
        f"{what} by the deployer {scope.deployer} after the deployment handed over to the Timelock (block {until}): "
        "the deployer's key used outside governance"
    )
    return item(scope, Category.ONCHAIN_NOT_RECORDED, subject, str(fact.event), detail, fact)


def _unrecorded(scope: ChainScope, fact: Fact, sender: str) -> Item:
    if fact.event in ROLE_EVENTS:
        return item(
            scope,
            Category.ONCHAIN_NOT_RECORDED,
            str(fact.args.get("account")),
            str(fact.event),
            f"role {fact.hex('role')} changed by {sender}: neither the deployment, the Timelock nor a governance "
            "action of ours",
            fact,
        )
    return item(
        scope,
        Category.ONCHAIN_NOT_RECORDED,
        fact.contract,
        str(fact.event),
        f"{fact.event} by {sender or 'an unnamed sender'}: no governance record (not sent through creditmesh admin)",
        fact,
    )
