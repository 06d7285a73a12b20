"""Reconciliation's values: the categories, the chain's facts and the platform's records as the matchers take them,
the scope of a run, its items and per-chain result (``compliance.reconcile`` is the public module)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from compliance.canonical import canonical_json, keccak256


class Category(StrEnum):
    MATCHED = "matched"
    OPENED_WITHOUT_ACCEPT = "opened-without-accept"
    LOAN_ID_MISMATCH = "loan-id-mismatch"
    OFFER_DIGEST_MISMATCH = "offer-digest-mismatch"
    BORROWER_MISMATCH = "borrower-mismatch"
    RATE_MISMATCH = "rate-mismatch"
    TERM_MISMATCH = "term-mismatch"
    FIELD_MISMATCH = "field-mismatch"
    ONCHAIN_NOT_RECORDED = "on-chain-not-recorded"
    RECORDED_NOT_ONCHAIN = "recorded-not-on-chain"
    AMOUNT_MISMATCH = "amount-mismatch"
    PROPOSAL_MISMATCH = "proposal-mismatch"
    STATUS_MISMATCH = "status-mismatch"
    UNKNOWN_EVENT = "unknown-event"
    UNREADABLE_RECORD = "unreadable-record"


DISCREPANCIES = tuple(category for category in Category if category is not Category.MATCHED)
LOAN_MOVES = ("LoanRepaid", "CollateralAdded", "CollateralRemoved", "LoanLiquidated")
ROLE_EVENTS = ("RoleGranted", "RoleRevoked")
PAUSE_EVENTS = ("Paused", "Unpaused", "LiquidationPauseChanged")
TIMELOCK_EVENTS = ("CallScheduled", "CallExecuted", "Cancelled")
#: events whose transaction's sender and recipient the reconciler reads (``TxParties``)
SENT_BY_EVENTS = ("CallScheduled", *PAUSE_EVENTS)
POOL_EVENTS = ("Deposit", "Withdraw")
#: an item's texts as a run stores them (``store.compliance``), and so as its digest covers them: a stored run is
#: checked against its digest (``compliance.reconcile_runs.run_tampering``)
SUBJECT_CHARS, WHAT_CHARS, DETAIL_CHARS = 128, 64, 1000


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
    borrower: str | None = None  # the ledger's borrower address, rate (bps) and term (seconds) of the loan
    rate_bps: int | None = None
    term_seconds: int | None = None
    #: the accepted quote's offer as our quote signer signed it (``borrower``, ``rateBps``, ``term``, ...); empty
    #: when the quote holds none
    offer: Mapping[str, Any] = field(default_factory=dict)
    #: the block of the newest chain fact the ledger holds for the loan, read with the record (None: none): a record
    #: whose ledger holds a fact after the run's last block is in a later state than the run read
    last_fact_block: int | None = None
    #: the rest of what ``LoanOpened`` sets on the record (None where the record holds nothing): the provider's id
    #: (its keccak256 is the event's ``providerId``), who funds it (the pool, else the provider id), the pool (None:
    #: none, the zero address on-chain), the assets, the fee and the disclosure's hash
    provider_id: str | None = None
    funder: str | None = None
    pool: str | None = None
    asset_address: str | None = None
    origination_fee: int | None = None
    collateral_asset: str | None = None
    terms_hash: str | None = None
    #: the totals its repayments paid (``LoanRepaid``'s interestPaid and principalPaid summed)
    interest_paid: int | None = None
    principal_paid: int | None = None

    def as_of(self, block: int) -> bool:
        """Whether the record's present state is the state at ``block``: its ledger holds no fact after it."""
        return self.last_fact_block is None or self.last_fact_block <= block


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
    #: the addresses and references it claims, by the event's argument (a repayment's ``payer`` and ``paymentRef``,
    #: a collateral movement's ``from``/``to`` and ``asset``, a liquidation's ``liquidator``)
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RelayedIntent:
    """A transaction the platform sent as its own and saw confirmed, by its intent's key: a borrower's repayment it
    relayed (``repay:…``) or the operator's ``markDefault``, ``cancelUnfunded``, ``holdLiquidation`` or
    ``releaseLiquidationHold`` of a loan (``markDefault:<chain id>:<CreditAggregator>:<loan id>`` …)."""

    key: str
    tx_hash: str
    block_number: int | None


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    operation_id: str
    state: str
    tx_hashes: Mapping[str, str]  # schedule | execute | cancel → the transaction; earlier rounds: schedule.1, …
    calls: Sequence[Mapping[str, Any]] = ()  # {"target", "value", "data", "decoded"} per call, in the operation's order
    #: what ``creditmesh admin`` kept so that the operation can be reconciled (None: not held, not compared)
    salt: str | None = None
    predecessor: str | None = None
    delay_seconds: int | None = None
    proposer: str | None = None  # who called the Timelock's schedule: the Safe, or the proposer's key
    #: each call's calldata decoded again with our ABIs when the run reads it, against the recorded ``decoded``
    decoded_again: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class TxParties:
    """A transaction's sender and recipient as the chain has them (``eth_getTransactionByHash``): who scheduled a
    Timelock operation (the recipient when it is not the Timelock — a Safe —, else the sender), who paused."""

    sender: str
    to: str


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
    #: sent on-chain instead of ``amount``: the payment completing the loan's disclosed total of payments, sent as
    #: what the loan owed on-chain so that it closes
    recorded_amount: int | None = None

    @property
    def sent_amount(self) -> int:
        return self.amount if self.recorded_amount is None else self.recorded_amount


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """A governance call one of our keys sent directly, outside the Timelock (the guardian's pause)."""

    action: str  # the function called
    address: str  # the contract called
    sender: str
    tx_hash: str
    block_number: int


@dataclass(frozen=True, slots=True)
class UnreadableRecord:
    """A row of ours the reconciler read whose stored value its column cannot hold (altered outside the platform):
    left out of the match, reported by table, id and column."""

    table: str
    row_id: str
    column: str
    detail: str


@dataclass(frozen=True, slots=True)
class Records:
    """What the platform holds for one chain (``store.reconcile`` reads it)."""

    loans: Sequence[LoanRecord] = ()
    entries: Sequence[EntryRecord] = ()
    proposals: Sequence[ProposalRecord] = ()
    our_offer_digests: frozenset[str] = frozenset()
    relayed_intents: Sequence[RelayedIntent] = ()
    actions: Sequence[ActionRecord] = ()
    payments: Sequence[PaymentRecord] = ()
    #: every transaction the platform signed for a liquidation hold or release (any attempt, whatever its intent's
    #: state: one mined but not yet confirmed when the run reads is ours too)
    hold_transactions: frozenset[str] = frozenset()
    unreadable: Sequence[UnreadableRecord] = ()
    #: the on-chain ids of this deployment's loans whose ledger row is among ``unreadable``: their opening and entries
    #: are not reported as not recorded again (the record is there; it does not read)
    unreadable_loans: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class ChainScope:
    """One chain's reconciled block range and who may wire roles: the deployer up to ``wiring_until`` (the
    deployments record's handover to the Timelock; None when the record has none: then up to the deployer's own
    renounce of its admin role, if the run sees it) and the Timelock; ``full`` when the range starts at the
    deployment (records outside a partial range are not judged); ``at_head`` when it ends at the chain's confirmed
    head as read (``compliance.reconcile_chain.confirmed_head``: the last block the indexer records): only then are
    the records' present states (a loan's status, outstanding principal and collateral, a proposal's state) judged,
    since a block after ``to_block`` may have changed them."""

    chain_name: str
    chain_id: int
    from_block: int
    to_block: int
    deployer: str
    timelock: str
    full: bool = True
    at_head: bool = True
    wiring_until: int | None = None


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
            "subject": self.subject[:SUBJECT_CHARS],
            "what": self.what[:WHAT_CHARS],
            "detail": self.detail[:DETAIL_CHARS],
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


def item(
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


def in_scope(scope: ChainScope, block: int | None) -> bool:
    return block is not None and scope.from_block <= block <= scope.to_block
