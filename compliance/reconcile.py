"""Reconciliation, pure: every on-chain fact of our contracts matched with the platform's records.

The chain side is what the reconciler re-read itself (``compliance.reconcile_chain``: ``eth_getLogs`` over our
addresses, decoded with the exported ABIs) — never the ledger's copy of the facts. The record side is what the
platform believes (``store.reconcile``): the loans and their repayments, collateral movements and liquidations, the
accept saga's records, our quotes' offer digests, the governance proposals. What is matched with what:

=====================================================  ==============================================================
chain fact                                             our record
=====================================================  ==============================================================
``LoanOpened``                                         the loan, our quote (``offerDigest``) and the accept that
                                                       recorded it; principal, collateral, status and outstanding
                                                       principal recomputed from the loan's facts
``LoanRepaid``                                         the ledger's repayment (same transaction and log), amounts;
                                                       each relayed repayment's confirmed intent (its transaction);
                                                       an off-chain one (``paymentRef`` not zero): the lender's
                                                       payment record with that reference, its loan and amount
``CollateralAdded``/``Removed``, ``LoanLiquidated``    the ledger's movement / liquidation, amounts
``LoanDefaulted``, ``LoanWrittenOff``, ``LoanClosed``  the loan's status
Timelock ``CallScheduled``/``CallExecuted``/           the persisted governance proposal (operation id), its state
``Cancelled``
``Paused``/``LiquidationPauseChanged``,                the governance action persisted when our key sent it
``RoleGranted``/``RoleRevoked``                        directly (the guardian's pause: same transaction and
                                                       contract); else sent by the deployer (the deployments
                                                       record's wiring) or by the Timelock (in a transaction that
                                                       executes an operation, reconciled above)
pool ``Deposit``/``Withdraw``                          reported per pool (lenders deposit directly)
=====================================================  ==============================================================

Categories: matched; opened without our accept; on-chain but not in our records; in our records but not on-chain
(never sent, or reorged away); amount mismatch; status mismatch; an unknown event (a topic in none of the exported
ABIs, or not in the ABI of the contract at that address) or unknown code at one of our addresses. Every other known
event (configuration, pool accounting) is counted as seen, not matched.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from compliance.canonical import canonical_json, keccak256


class Category(StrEnum):
    MATCHED = "matched"
    OPENED_WITHOUT_ACCEPT = "opened-without-accept"
    ONCHAIN_NOT_RECORDED = "on-chain-not-recorded"
    RECORDED_NOT_ONCHAIN = "recorded-not-on-chain"
    AMOUNT_MISMATCH = "amount-mismatch"
    STATUS_MISMATCH = "status-mismatch"
    UNKNOWN_EVENT = "unknown-event"


DISCREPANCIES = tuple(category for category in Category if category is not Category.MATCHED)
LOAN_MOVES = ("LoanRepaid", "CollateralAdded", "CollateralRemoved", "LoanLiquidated")
ROLE_EVENTS = ("RoleGranted", "RoleRevoked")
PAUSE_EVENTS = ("Paused", "Unpaused", "LiquidationPauseChanged")
TIMELOCK_EVENTS = ("CallScheduled", "CallExecuted", "Cancelled")
POOL_EVENTS = ("Deposit", "Withdraw")


@dataclass(frozen=True, slots=True)
class Fact:
    """One log at one of our addresses as the chain has it: ``event`` None when no exported ABI knows its topic for
    the contract at that address."""

    chain_name: str
    contract: str  # the deployments record's name of the contract at ``address``
    address: str
    event: str | None
    args: Mapping[str, Any]
    block_number: int
    tx_hash: str
    log_index: int
    topic: str = ""

    def uint(self, name: str) -> int:
        return int(self.args[name])

    def hex(self, name: str) -> str:
        value = self.args[name]
        return "0x" + bytes(value).hex() if isinstance(value, (bytes, bytearray)) else str(value).lower()


@dataclass(frozen=True, slots=True)
class CodeFinding:
    """A recorded address whose runtime code is not its artifact's (``chain.verification``)."""

    contract: str
    address: str
    detail: str


@dataclass(frozen=True, slots=True)
class LoanRecord:
    loan_id: str
    onchain_loan_id: int | None
    offer_digest: str
    principal: int
    status: str
    outstanding_principal: int | None
    collateral_amount: int | None
    tx_hash: str | None
    block_number: int | None
    quote_id: str | None
    accepted: bool  # the accept saga recorded this loan


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """A ledger entry (repayment, collateral movement, liquidation) with the transaction and log it claims."""

    kind: str  # LoanRepaid | CollateralAdded | CollateralRemoved | LoanLiquidated
    loan_id: str
    onchain_loan_id: int | None
    tx_hash: str
    log_index: int
    block_number: int
    amounts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class RepaymentIntent:
    """A repayment the platform relayed (its transaction intent, ``repay:…``) and saw confirmed."""

    key: str
    tx_hash: str
    block_number: int | None


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    operation_id: str
    state: str
    tx_hashes: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """A lender's payment the platform accepted (``payment.received``) and had the operator record on-chain."""

    reference: str  # the on-chain paymentRef
    onchain_loan_id: int
    amount: int  # as the lender reported it, base units
    loan_id: str
    status: str  # accepted (not mined yet) | recorded | refused (the chain refused it: nothing to match)
    tx_hash: str | None
    block_number: int | None


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """A governance call one of our keys sent directly, outside the Timelock (the guardian's pause)."""

    action: str  # the function called
    address: str  # the contract called
    sender: str
    tx_hash: str
    block_number: int


@dataclass(frozen=True, slots=True)
class Records:
    """What the platform holds for one chain (``store.reconcile`` reads it)."""

    loans: Sequence[LoanRecord] = ()
    entries: Sequence[EntryRecord] = ()
    proposals: Sequence[ProposalRecord] = ()
    our_offer_digests: frozenset[str] = frozenset()
    repayment_intents: Sequence[RepaymentIntent] = ()
    actions: Sequence[ActionRecord] = ()
    payments: Sequence[PaymentRecord] = ()


@dataclass(frozen=True, slots=True)
class ChainScope:
    """One chain's reconciled block range and who may wire roles: the deployer (its record's wiring) and the
    Timelock; ``full`` when the range starts at the deployment (records outside a partial range are not judged)."""

    chain_name: str
    chain_id: int
    from_block: int
    to_block: int
    deployer: str
    timelock: str
    full: bool = True


@dataclass(frozen=True, slots=True)
class Item:
    chain_name: str
    category: Category
    subject: str  # the loan id, on-chain loan number, operation id or address it concerns
    what: str  # the event or record kind
    detail: str
    tx_hash: str | None = None
    block_number: int | None = None
    record_ref: str | None = None  # our record: a loan id, a proposal's operation id

    def as_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain_name,
            "category": self.category.value,
            "subject": self.subject,
            "what": self.what,
            "detail": self.detail,
            "txHash": self.tx_hash,
            "blockNumber": self.block_number,
            "recordRef": self.record_ref,
        }


@dataclass(frozen=True, slots=True)
class PoolFlow:
    pool: str
    deposits: int = 0
    withdrawals: int = 0
    deposited: int = 0  # assets, base units
    withdrawn: int = 0


@dataclass
class ChainResult:
    scope: ChainScope
    facts: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    items: list[Item] = field(default_factory=list)  # discrepancies only
    pools: dict[str, PoolFlow] = field(default_factory=dict)

    def add(self, item: Item) -> None:
        self.counts[item.category.value] += 1
        if item.category is not Category.MATCHED:
            self.items.append(item)

    def matched(self, count: int = 1) -> None:
        self.counts[Category.MATCHED.value] += count

    def summary(self) -> dict[str, Any]:
        return {
            "chain": self.scope.chain_name,
            "chainId": self.scope.chain_id,
            "fromBlock": self.scope.from_block,
            "toBlock": self.scope.to_block,
            "facts": self.facts,
            "counts": {category.value: self.counts.get(category.value, 0) for category in Category},
            "pools": [
                {
                    "pool": flow.pool,
                    "deposits": flow.deposits,
                    "withdrawals": flow.withdrawals,
                    "deposited": str(flow.deposited),
                    "withdrawn": str(flow.withdrawn),
                }
                for flow in self.pools.values()
            ],
        }


def result_digest(results: Sequence[ChainResult]) -> str:
    """0x keccak256 of the canonical JSON of every chain's summary and discrepancies: what the run is stored and
    audited with."""
    body = [{"summary": r.summary(), "items": [item.as_json() for item in r.items]} for r in results]
    return "0x" + keccak256(canonical_json(body)).hex()


@dataclass
class _Loan:
    opened: Fact
    facts: list[Fact] = field(default_factory=list)


def reconcile_chain(
    scope: ChainScope, facts: Iterable[Fact], records: Records, code: Iterable[CodeFinding] = ()
) -> ChainResult:
    """Match one chain's facts in ``scope`` with ``records`` (see the module docstring)."""
    result = ChainResult(scope)
    ordered = sorted(facts, key=lambda f: (f.block_number, f.log_index))
    result.facts = len(ordered)
    for finding in code:
        result.add(Item(scope.chain_name, Category.UNKNOWN_EVENT, finding.address, finding.contract, finding.detail))
    loans: dict[int, _Loan] = {}
    onchain_entries: dict[tuple[str, int], Fact] = {}
    timelock: dict[str, list[Fact]] = defaultdict(list)
    direct: list[Fact] = []  # role changes and pauses, matched once every Timelock execution is known
    for fact in ordered:
        if fact.event is None:
            detail = f"topic {fact.topic} is in no exported ABI for {fact.contract}"
            result.add(
                Item(
                    scope.chain_name,
                    Category.UNKNOWN_EVENT,
                    fact.address,
                    fact.contract,
                    detail,
                    fact.tx_hash,
                    fact.block_number,
                )
            )
        elif fact.event == "LoanOpened" and fact.contract == "CreditAggregator":
            loans[fact.uint("loanId")] = _Loan(fact)
        elif fact.event in ("LoanRepaid", "LoanDefaulted", "LoanWrittenOff", "LoanClosed", *LOAN_MOVES[1:]):
            if fact.contract in ("CreditAggregator", "CollateralManager"):
                loan = loans.get(fact.uint("loanId"))
                if loan is not None:
                    loan.facts.append(fact)
                if fact.event in LOAN_MOVES:
                    onchain_entries[(fact.tx_hash, fact.log_index)] = fact
        elif fact.event in TIMELOCK_EVENTS and fact.contract == "Timelock":
            timelock[fact.hex("id")].append(fact)
        elif fact.event in ROLE_EVENTS or fact.event in PAUSE_EVENTS:
            direct.append(fact)
        elif fact.event in POOL_EVENTS and fact.contract.startswith("LendingPool"):
            _pool_flow(result, fact)
    _loans(result, scope, loans, records)
    _entries(result, scope, onchain_entries, records)
    _repayment_intents(result, scope, ordered, records)
    _payments(result, scope, ordered, records)
    _governance(result, scope, timelock, records)
    executed_in = {f.tx_hash.lower() for facts in timelock.values() for f in facts if f.event == "CallExecuted"}
    _direct(result, scope, direct, executed_in, records)
    return result


def _repayment_intents(result: ChainResult, scope: ChainScope, facts: list[Fact], records: Records) -> None:
    """Each repayment the platform relayed and saw confirmed has its ``LoanRepaid`` in that transaction."""
    repaid_in = {fact.tx_hash.lower() for fact in facts if fact.event == "LoanRepaid"}
    for intent in records.repayment_intents:
        if not _in_scope(scope, intent.block_number):
            continue
        if intent.tx_hash.lower() in repaid_in:
            result.matched()
        else:
            result.add(
                _item(
                    scope,
                    Category.RECORDED_NOT_ONCHAIN,
                    intent.key,
                    "repayment intent",
                    f"relayed and recorded confirmed in {intent.tx_hash} (block {intent.block_number}); the "
                    "chain has no LoanRepaid in it (never mined there, or reorged away)",
                    None,
                    intent.key,
                )
            )


ZERO_REF = "0x" + "00" * 32


def _payments(result: ChainResult, scope: ChainScope, facts: list[Fact], records: Records) -> None:
    """Each off-chain ``LoanRepaid`` (a ``paymentRef``) has the lender's payment record with that reference, for that
    loan and amount — the contract applies at most what is owed, so a payment that closed the loan may have been
    larger; each payment the platform recorded has its ``LoanRepaid`` on-chain."""
    payments = {(p.reference.lower(), p.onchain_loan_id): p for p in records.payments if p.status != "refused"}
    by_reference = {reference: p for (reference, _), p in payments.items()}
    seen: set[tuple[str, int]] = set()
    for fact in facts:
        if fact.event != "LoanRepaid" or fact.contract != "CreditAggregator":
            continue
        reference = fact.hex("paymentRef")
        if reference == ZERO_REF:
            continue
        number, subject = fact.uint("loanId"), f"loan #{fact.uint('loanId')}"
        payment = payments.get((reference, number)) or by_reference.get(reference)
        if payment is None:
            detail = f"an off-chain repayment with reference {reference}: no lender payment record has it"
            result.add(_item(scope, Category.ONCHAIN_NOT_RECORDED, subject, "payment record", detail, fact))
            continue
        seen.add((reference, payment.onchain_loan_id))
        applied = fact.uint("interestPaid") + fact.uint("principalPaid")
        wrong = []
        if payment.onchain_loan_id != number:
            wrong.append(f"reported for loan #{payment.onchain_loan_id}")
        closed_by_more = applied < payment.amount and fact.uint("outstandingPrincipal") == 0
        if applied != payment.amount and not closed_by_more:
            wrong.append(f"amount: reported {payment.amount}, recorded on-chain {applied}")
        if wrong:
            detail = "; ".join(wrong)
            result.add(_item(scope, Category.AMOUNT_MISMATCH, subject, "payment record", detail, fact, payment.loan_id))
        else:
            result.matched()
    for key, payment in payments.items():
        judged = _in_scope(scope, payment.block_number) or (payment.block_number is None and scope.full)
        if key in seen or not judged:
            continue
        sent = f"recorded in {payment.tx_hash} (block {payment.block_number})" if payment.tx_hash else "not sent"
        result.add(
            _item(
                scope,
                Category.RECORDED_NOT_ONCHAIN,
                f"loan #{payment.onchain_loan_id}",
                "payment record",
                f"the lender's payment {payment.reference} of {payment.amount}, {sent}: the chain has no LoanRepaid "
                "with its reference (never mined, or reorged away)",
                None,
                payment.loan_id,
            )
        )


def _item(
    scope: ChainScope,
    category: Category,
    subject: str,
    what: str,
    detail: str,
    fact: Fact | None = None,
    record_ref: str | None = None,
) -> Item:
    return Item(
        scope.chain_name,
        category,
        subject,
        what,
        detail,
        None if fact is None else fact.tx_hash,
        None if fact is None else fact.block_number,
        record_ref,
    )


def _in_scope(scope: ChainScope, block: int | None) -> bool:
    return block is not None and scope.from_block <= block <= scope.to_block


def _loans(result: ChainResult, scope: ChainScope, loans: dict[int, _Loan], records: Records) -> None:
    by_number = {r.onchain_loan_id: r for r in records.loans if r.onchain_loan_id is not None}
    by_digest = {r.offer_digest.lower(): r for r in records.loans}
    seen: set[str] = set()
    for number, loan in loans.items():
        opened = loan.opened
        digest = opened.hex("offerDigest")
        record = by_number.get(number) or by_digest.get(digest)
        subject = f"loan #{number}"
        if record is None:
            result.add(
                _item(
                    scope,
                    Category.ONCHAIN_NOT_RECORDED,
                    subject,
                    "LoanOpened",
                    f"no loan record for offer {digest}",
                    opened,
                )
            )
            continue
        seen.add(record.loan_id)
        if record.offer_digest.lower() != digest:
            result.add(
                _item(
                    scope,
                    Category.AMOUNT_MISMATCH,
                    subject,
                    "LoanOpened",
                    f"recorded with offer {record.offer_digest}, the chain says {digest}",
                    opened,
                    record.loan_id,
                )
            )
            continue
        if record.quote_id is None or digest not in records.our_offer_digests or not record.accepted:
            why = "no quote of ours" if digest not in records.our_offer_digests else "no accept of ours recorded it"
            result.add(_item(scope, Category.OPENED_WITHOUT_ACCEPT, subject, "LoanOpened", why, opened, record.loan_id))
            continue
        problems = _compare(record, loan)
        for category, detail in problems:
            result.add(_item(scope, category, subject, "loan", detail, opened, record.loan_id))
        if not problems:
            result.matched(1 + sum(1 for f in loan.facts if f.event not in LOAN_MOVES))
    for record in records.loans:
        if record.loan_id not in seen and _in_scope(scope, record.block_number):
            result.add(
                _item(
                    scope,
                    Category.RECORDED_NOT_ONCHAIN,
                    record.loan_id,
                    "loan",
                    f"recorded as opened in {record.tx_hash} (block {record.block_number}); the chain has "
                    "no such LoanOpened (never mined, or reorged away)",
                    None,
                    record.loan_id,
                )
            )


def _expected(loan: _Loan) -> tuple[str, int, int]:
    """(status, outstanding principal, collateral held) as the chain's events say."""
    opened = loan.opened
    status, outstanding = "active", opened.uint("principal")
    collateral = opened.uint("collateralAmount")
    liquidated_in: set[str] = set()
    for fact in loan.facts:
        if fact.event == "LoanRepaid":
            outstanding = fact.uint("outstandingPrincipal")
        elif fact.event == "LoanDefaulted":
            status, outstanding = "defaulted", fact.uint("outstandingPrincipal")
        elif fact.event == "LoanWrittenOff":
            status, outstanding = "written_off", 0
        elif fact.event == "LoanLiquidated":
            liquidated_in.add(fact.tx_hash)
        elif fact.event == "LoanClosed" and status in ("active", "defaulted"):
            status = "liquidated" if fact.tx_hash in liquidated_in else "repaid"
        elif fact.event == "CollateralAdded" and fact.tx_hash != opened.tx_hash:
            collateral += fact.uint("amount")
        elif fact.event == "CollateralRemoved":
            collateral = max(0, collateral - fact.uint("amount"))
    return status, outstanding, collateral


def _compare(record: LoanRecord, loan: _Loan) -> list[tuple[Category, str]]:
    status, outstanding, collateral = _expected(loan)
    problems: list[tuple[Category, str]] = []
    principal = loan.opened.uint("principal")
    if record.principal != principal:
        problems.append((Category.AMOUNT_MISMATCH, f"principal: recorded {record.principal}, on-chain {principal}"))
    if record.outstanding_principal is not None and record.outstanding_principal != outstanding:
        problems.append(
            (
                Category.AMOUNT_MISMATCH,
                f"outstanding principal: recorded {record.outstanding_principal}, on-chain {outstanding}",
            )
        )
    if record.collateral_amount is not None and record.collateral_amount != collateral:
        problems.append(
            (Category.AMOUNT_MISMATCH, f"collateral: recorded {record.collateral_amount}, on-chain {collateral}")
        )
    if record.status != status:
        problems.append((Category.STATUS_MISMATCH, f"status: recorded {record.status}, on-chain {status}"))
    return problems


_ENTRY_AMOUNTS = {
    "LoanRepaid": ("interestPaid", "principalPaid"),
    "CollateralAdded": ("amount",),
    "CollateralRemoved": ("amount",),
    "LoanLiquidated": ("debtRepaid", "collateralSeized"),
}


def _entries(result: ChainResult, scope: ChainScope, onchain: dict[tuple[str, int], Fact], records: Records) -> None:
    recorded = {(e.tx_hash, e.log_index): e for e in records.entries}
    for key, fact in onchain.items():
        entry = recorded.get(key)
        subject = f"loan #{fact.uint('loanId')}"
        event = str(fact.event)
        if entry is None:
            result.add(
                _item(scope, Category.ONCHAIN_NOT_RECORDED, subject, event, "no ledger entry for this log", fact)
            )
            continue
        wrong = [
            f"{name}: recorded {entry.amounts.get(name)}, on-chain {fact.uint(name)}"
            for name in _ENTRY_AMOUNTS[event]
            if entry.amounts.get(name) != fact.uint(name)
        ]
        if entry.kind != event:
            wrong.append(f"recorded as {entry.kind}")
        if wrong:
            result.add(_item(scope, Category.AMOUNT_MISMATCH, subject, event, "; ".join(wrong), fact, entry.loan_id))
        else:
            result.matched()
    for key, entry in recorded.items():
        if key not in onchain and _in_scope(scope, entry.block_number):
            result.add(
                _item(
                    scope,
                    Category.RECORDED_NOT_ONCHAIN,
                    entry.loan_id,
                    entry.kind,
                    f"recorded from {entry.tx_hash} log {entry.log_index}; the chain has no such log (never "
                    "sent, or reorged away)",
                    None,
                    entry.loan_id,
                )
            )


_STATE_AFTER = {"CallScheduled": "pending", "CallExecuted": "done", "Cancelled": "cancelled"}
_SETTLED = ("waiting", "ready", "pending")


def _governance(result: ChainResult, scope: ChainScope, timelock: dict[str, list[Fact]], records: Records) -> None:
    proposals = {p.operation_id.lower(): p for p in records.proposals}
    for operation_id, facts in timelock.items():
        proposal = proposals.get(operation_id)
        first = facts[0]
        if proposal is None:
            result.add(
                _item(
                    scope,
                    Category.ONCHAIN_NOT_RECORDED,
                    operation_id,
                    str(first.event),
                    "a Timelock operation no governance proposal of ours records",
                    first,
                )
            )
            continue
        state = _STATE_AFTER[str(facts[-1].event)]
        recorded = "pending" if proposal.state in _SETTLED else proposal.state
        if state != recorded:
            result.add(
                _item(
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
                _item(
                    scope,
                    Category.RECORDED_NOT_ONCHAIN,
                    operation_id,
                    "proposal",
                    f"recorded as scheduled in {proposal.tx_hashes['schedule']}; the Timelock never scheduled it",
                    None,
                    operation_id,
                )
            )


def _direct(result: ChainResult, scope: ChainScope, facts: list[Fact], executed_in: set[str], records: Records) -> None:
    """Role changes and pauses: a governance action of ours in that transaction at that contract, the deployer's
    wiring, or the Timelock executing an operation (``LiquidationPauseChanged`` names no sender: its transaction
    must execute one); anything else is on-chain but not recorded. A recorded action with no such event in its
    transaction is recorded but not on-chain."""
    actions = {(a.tx_hash.lower(), a.address.lower()): a for a in records.actions}
    wiring = {scope.deployer.lower(), scope.timelock.lower()} - {""}
    seen: set[tuple[str, str]] = set()
    for fact in facts:
        key = (fact.tx_hash.lower(), fact.address.lower())
        sender = str(fact.args.get("sender") or fact.args.get("account") or "").lower()
        if key in actions:
            seen.add(key)
            result.matched()
        elif sender in wiring or (not sender and fact.tx_hash.lower() in executed_in):
            result.matched()
        else:
            result.add(_unrecorded(scope, fact, sender))
    for key, action in actions.items():
        if key not in seen and _in_scope(scope, action.block_number):
            result.add(
                _item(
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


def _unrecorded(scope: ChainScope, fact: Fact, sender: str) -> Item:
    if fact.event in ROLE_EVENTS:
        return _item(
            scope,
            Category.ONCHAIN_NOT_RECORDED,
            str(fact.args.get("account")),
            str(fact.event),
            f"role {fact.hex('role')} changed by {sender}: neither the deployment, the Timelock nor a governance "
            "action of ours",
            fact,
        )
    return _item(
        scope,
        Category.ONCHAIN_NOT_RECORDED,
        fact.contract,
        str(fact.event),
        f"{fact.event} by {sender or 'an unnamed sender'}: no governance record (not sent through creditmesh admin)",
        fact,
    )


def _pool_flow(result: ChainResult, fact: Fact) -> None:
    flow = result.pools.get(fact.contract, PoolFlow(fact.contract))
    assets = fact.uint("assets")
    if fact.event == "Deposit":
        flow = PoolFlow(flow.pool, flow.deposits + 1, flow.withdrawals, flow.deposited + assets, flow.withdrawn)
    else:
        flow = PoolFlow(flow.pool, flow.deposits, flow.withdrawals + 1, flow.deposited, flow.withdrawn + assets)
    result.pools[fact.contract] = flow
