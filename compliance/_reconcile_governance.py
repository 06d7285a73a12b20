"""Reconciliation of governance: the Timelock's operations with our proposals, and role changes and pauses with the
governance actions our keys sent directly, the deployer's wiring or a Timelock execution."""

from __future__ import annotations

from compliance._reconcile_values import (
    ROLE_EVENTS,
    Category,
    ChainResult,
    ChainScope,
    Fact,
    Item,
    ProposalRecord,
    Records,
    in_scope,
    item,
)

_STATE_AFTER = {"CallScheduled": "pending", "CallExecuted": "done", "Cancelled": "cancelled"}
_ACTION_OF = {"CallScheduled": "schedule", "CallExecuted": "execute", "Cancelled": "cancel"}
_SETTLED = ("waiting", "ready", "pending")


def match_proposals(result: ChainResult, scope: ChainScope, timelock: dict[str, list[Fact]], records: Records) -> None:
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
        if wrong:
            detail = "; ".join(wrong)
            result.add(item(scope, Category.PROPOSAL_MISMATCH, operation_id, "proposal", detail, first, operation_id))
            continue
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
        else:
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
    index) other than the recorded one, or a schedule, execute or cancel transaction other than the recorded one."""
    wrong = []
    for fact in facts:
        if fact.event == "CallScheduled":
            index = fact.uint("index")
            onchain = (str(fact.args.get("target", "")).lower(), fact.uint("value"), fact.hex("data"))
            call = proposal.calls[index] if index < len(proposal.calls) else None
            ours = (
                None if call is None else (str(call["target"]).lower(), int(call["value"]), str(call["data"]).lower())
            )
            if ours != onchain:
                wrong.append(f"call {index}: recorded {_call(ours)}, scheduled {_call(onchain)}")
        action = _ACTION_OF[str(fact.event)]
        recorded = proposal.tx_hashes.get(action)
        if recorded is not None and recorded.lower() != fact.tx_hash.lower():
            wrong.append(f"{action} transaction: recorded {recorded}, on-chain {fact.tx_hash}")
    if len(proposal.calls) != len({f.uint("index") for f in facts if f.event == "CallScheduled"}) and any(
        f.event == "CallScheduled" for f in facts
    ):
        wrong.append(f"{len(proposal.calls)} calls recorded")
    return list(dict.fromkeys(wrong))


def _call(call: tuple[str, int, str] | None) -> str:
    return "none" if call is None else f"{call[0]} value {call[1]} data {call[2][:18]}…"


def match_direct_actions(
    result: ChainResult, scope: ChainScope, facts: list[Fact], executed_in: set[str], records: Records
) -> None:
    """Role changes and pauses: a governance action of ours in that transaction at that contract, the deployer's
    wiring, or the Timelock executing an operation (``LiquidationPauseChanged`` names no sender: its transaction
    must execute one); anything else is on-chain but not recorded. A recorded action with no such event in its
    transaction is recorded but not on-chain."""
    actions = {(a.tx_hash.lower(), a.address.lower()): a for a in records.actions}
    deployer, timelock = scope.deployer.lower(), scope.timelock.lower()
    until = scope.wiring_until if scope.wiring_until is not None else _renounced_at(facts, deployer)
    seen: set[tuple[str, str]] = set()
    for fact in facts:
        key = (fact.tx_hash.lower(), fact.address.lower())
        sender = str(fact.args.get("sender") or fact.args.get("account") or "").lower()
        wiring = bool(deployer) and sender == deployer and (until is None or fact.block_number <= until)
        if key in actions:
            seen.add(key)
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
