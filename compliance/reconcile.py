"""Reconciliation, pure: every on-chain fact of our contracts matched with the platform's records.

The chain side is what the reconciler re-read itself (``compliance.reconcile_chain``: ``eth_getLogs`` over our
addresses, decoded with the exported ABIs) — never the ledger's copy of the facts. The record side is what the
platform believes (``store.reconcile``): the loans and their repayments, collateral movements and liquidations, the
accept saga's records, our quotes' offer digests, the governance proposals. What is matched with what:

=====================================================  ==============================================================
chain fact                                             our record
=====================================================  ==============================================================
``LoanOpened``                                         the loan (by ``offerDigest``, its loan id compared), our
                                                       quote and the accept that recorded it; borrower, rate and
                                                       term against the loan and the quote's signed offer;
                                                       principal, collateral, status and outstanding principal
                                                       recomputed from the loan's facts
``LoanRepaid``                                         the ledger's repayment (same transaction and log), amounts;
                                                       each relayed repayment's confirmed intent (its transaction);
                                                       an off-chain one (``paymentRef`` not zero): the lender's
                                                       payment record with that reference, its loan and amount
``CollateralAdded``/``Removed``, ``LoanLiquidated``    the ledger's movement / liquidation, amounts
``LoanDefaulted``, ``LoanWrittenOff``, ``LoanClosed``, the loan's status; a ``markDefault`` or ``cancelUnfunded`` the
``LoanCancelled``                                      operator sent: its confirmed intent (its transaction)
``LiquidationHoldChanged``                             the operator's ``holdLiquidation``/``releaseLiquidationHold``
                                                       intent of that loan, confirmed in its transaction
Timelock ``CallScheduled``/``CallExecuted``/           the persisted governance proposal (operation id), its state
``Cancelled``
``Paused``/``LiquidationPauseChanged``,                the governance action persisted when our key sent it
``RoleGranted``/``RoleRevoked``                        directly (the guardian's pause: same transaction and
                                                       contract); else sent by the deployer up to its handover
                                                       to the Timelock (the deployments record's wiring) or by the
                                                       Timelock (in a transaction that executes an operation,
                                                       reconciled above)
pool ``Deposit``/``Withdraw``                          reported per pool (lenders deposit directly)
=====================================================  ==============================================================

Categories: matched; opened without our accept; a loan record (found by its offer digest) naming another on-chain loan
id; a loan record with the event's loan id but another offer digest; a borrower, rate or term other than the loan
record's or our accepted offer's; on-chain but not in our records; in our records but not on-chain (never sent, or
reorged away); amount mismatch; status mismatch; an unknown event (a topic in none of the exported ABIs, or not in the
ABI of the contract at that address) or unknown code at one of our addresses. Every other known event (configuration,
pool accounting) is counted as seen, not matched.

Layout: private modules behind these public names — ``_reconcile_values`` (the facts, records, scope, items and
result), ``_reconcile_loans`` (loans, ledger entries, pool flows), ``_reconcile_payments`` (the lenders' off-chain
payments), ``_reconcile_relayed`` (the transactions we sent as our own: relayed repayments, the operator's defaults,
cancellations and liquidation holds), ``_reconcile_governance`` (Timelock operations, direct role changes and pauses);
``reconcile_chain`` here sorts one chain's facts and hands each matcher its share.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from compliance._reconcile_governance import match_direct_actions, match_proposals
from compliance._reconcile_loans import (
    OpenedLoan,
    count_pool_flow,
    match_earlier_loans,
    match_entries,
    match_loans,
)
from compliance._reconcile_payments import ZERO_REF, match_payments
from compliance._reconcile_relayed import match_liquidation_holds, match_relayed_intents
from compliance._reconcile_values import (
    DETAIL_CHARS,
    DISCREPANCIES,
    LOAN_MOVES,
    PAUSE_EVENTS,
    POOL_EVENTS,
    ROLE_EVENTS,
    SENT_BY_EVENTS,
    SUBJECT_CHARS,
    TIMELOCK_EVENTS,
    WHAT_CHARS,
    ActionRecord,
    Category,
    ChainResult,
    ChainScope,
    CodeFinding,
    EntryRecord,
    Fact,
    Item,
    LoanRecord,
    PaymentRecord,
    PoolFlow,
    ProposalRecord,
    Records,
    RelayedIntent,
    TxParties,
    UnreadableRecord,
    result_digest,
)

__all__ = [
    "DETAIL_CHARS",
    "DISCREPANCIES",
    "LOAN_MOVES",
    "PAUSE_EVENTS",
    "POOL_EVENTS",
    "ROLE_EVENTS",
    "SENT_BY_EVENTS",
    "SUBJECT_CHARS",
    "TIMELOCK_EVENTS",
    "WHAT_CHARS",
    "ZERO_REF",
    "ActionRecord",
    "Category",
    "ChainResult",
    "ChainScope",
    "CodeFinding",
    "EntryRecord",
    "Fact",
    "Item",
    "LoanRecord",
    "PaymentRecord",
    "PoolFlow",
    "ProposalRecord",
    "Records",
    "RelayedIntent",
    "TxParties",
    "UnreadableRecord",
    "reconcile_chain",
    "result_digest",
]


def reconcile_chain(
    scope: ChainScope,
    facts: Iterable[Fact],
    records: Records,
    code: Iterable[CodeFinding] = (),
    senders: Mapping[str, TxParties] | None = None,
) -> ChainResult:
    """Match one chain's facts in ``scope`` with ``records`` (see the module docstring); ``senders``: the parties of
    the transactions of ``SENT_BY_EVENTS``, by hash in lower case."""
    result = ChainResult(scope)
    ordered = sorted(facts, key=lambda f: (f.block_number, f.log_index))
    result.facts = len(ordered)
    for finding in code:
        result.add(Item(scope.chain_name, Category.UNKNOWN_EVENT, finding.address, finding.contract, finding.detail))
    for bad in records.unreadable:
        subject = f"{bad.table} {bad.row_id}"
        result.add(
            Item(scope.chain_name, Category.UNREADABLE_RECORD, subject, bad.column, bad.detail, None, None, bad.row_id)
        )
    loans: dict[int, OpenedLoan] = {}
    earlier: dict[int, list[Fact]] = defaultdict(list)  # facts of loans opened before the range (a partial run)
    onchain_entries: dict[tuple[str, int], Fact] = {}
    timelock: dict[str, list[Fact]] = defaultdict(list)
    salts: dict[str, str] = {}  # operation id → its CallSalt
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
            loans[fact.uint("loanId")] = OpenedLoan(fact)
        elif fact.event in (
            "LoanRepaid",
            "LoanDefaulted",
            "LoanWrittenOff",
            "LoanCancelled",
            "LoanClosed",
            *LOAN_MOVES[1:],
        ):
            if fact.contract in ("CreditAggregator", "CollateralManager"):
                loan = loans.get(fact.uint("loanId"))
                if loan is not None:
                    loan.facts.append(fact)
                else:
                    earlier[fact.uint("loanId")].append(fact)
                if fact.event in LOAN_MOVES:
                    onchain_entries[(fact.tx_hash, fact.log_index)] = fact
        elif fact.event in TIMELOCK_EVENTS and fact.contract == "Timelock":
            timelock[fact.hex("id")].append(fact)
        elif fact.event == "CallSalt" and fact.contract == "Timelock":
            salts[fact.hex("id")] = fact.hex("salt")
        elif fact.event in ROLE_EVENTS or fact.event in PAUSE_EVENTS:
            direct.append(fact)
        elif fact.event in POOL_EVENTS and fact.contract.startswith("LendingPool"):
            count_pool_flow(result, fact)
    match_loans(result, scope, loans, records)
    match_earlier_loans(result, scope, earlier, records)
    match_entries(result, scope, onchain_entries, records)
    match_relayed_intents(result, scope, ordered, records)
    match_liquidation_holds(result, scope, ordered, records)
    match_payments(result, scope, ordered, records)
    match_proposals(result, scope, timelock, records, salts, senders)
    executed_in = {f.tx_hash.lower() for facts in timelock.values() for f in facts if f.event == "CallExecuted"}
    match_direct_actions(result, scope, direct, executed_in, records, senders)
    return result
