"""How chain facts move a loan: pure functions over plain values (no session, no clock), used by the ledger
(``aggregator.ledger``) for each new fact, and to rebuild a loan from its facts after a reorg or when a fact arrives
after a later one of its loan (``caught_up``).

The loan's status follows the CreditAggregator's ``LoanStatus`` plus ``written_off``:

* ``LoanOpened`` opens the record: status ``active``, principal outstanding, collateral, funder (the pool, or the
  provider id for a loan funded off-chain).
* ``LoanRepaid`` adds a repayment (interest first, then principal) and sets the outstanding principal.
* ``LoanClosed`` is an event, not a status: an active or defaulted loan closed by repayment becomes ``repaid``, or
  ``liquidated`` when a ``LoanLiquidated`` of the same transaction closed it; ``LoanWrittenOff`` (a liquidation that
  ran out of collateral) makes it ``written_off``.
* ``LoanCancelled`` (the operator's ``cancelUnfunded`` of a loan its lender never funded) → ``cancelled``, no
  principal outstanding; the ``LoanClosed`` after it in the same transaction leaves it ``cancelled``.
* ``LoanDefaulted`` → ``defaulted``. ``CollateralAdded``/``CollateralRemoved`` move the collateral (the deposit at
  opening is already in ``LoanOpened``'s amount), and so does ``LoanLiquidated``'s ``collateralSeized``, which the
  CollateralManager hands the liquidator without a ``CollateralRemoved``. Every other event is kept as a fact only.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from eth_utils.address import to_checksum_address

from chain.deployment import DeploymentRecord
from chain.events import ChainEvent

ACTIVE, REPAID, DEFAULTED, LIQUIDATED, WRITTEN_OFF = "active", "repaid", "defaulted", "liquidated", "written_off"
CANCELLED = "cancelled"  # ended unfunded by the operator: no debt, its collateral back with the borrower
STATUSES = (ACTIVE, REPAID, DEFAULTED, LIQUIDATED, WRITTEN_OFF, CANCELLED)
OURS = ("accepting", "accepted")  # quote statuses that mean an accept of ours holds the quote
ZERO_ADDRESS = "0x" + "00" * 20
_LOAN_IDS = uuid.UUID("6f1d3c0e-8a53-4d1e-9a51-2f7c1b0f3a11")


def loan_id_for(chain_id: int, aggregator: str, offer_digest: str) -> str:
    """The ledger id of the loan opened from ``offer_digest`` on (chain, CreditAggregator): the same for every
    process that records it."""
    return str(uuid.uuid5(_LOAN_IDS, f"{chain_id}:{aggregator.lower()}:{offer_digest.lower()}"))


@dataclass(frozen=True, slots=True)
class LedgerChain:
    """What the ledger needs to know about one chain's contract set."""

    name: str
    chain_id: int
    aggregator: str
    collateral_manager: str
    asset_symbols: Mapping[str, str] = field(default_factory=dict)  # lower-case token address → symbol

    @classmethod
    def from_record(cls, record: DeploymentRecord) -> LedgerChain:
        symbols = {listing.address.lower(): symbol for symbol, listing in record.token_listings().items()}
        return cls(
            name=record.chain_name,
            chain_id=record.chain_id,
            aggregator=record.address("CreditAggregator"),
            collateral_manager=record.address("CollateralManager"),
            asset_symbols=symbols,
        )

    def symbol(self, token: str) -> str:
        return self.asset_symbols.get(token.lower(), to_checksum_address(token))

    def moves_loans(self, address: str) -> bool:
        return address.lower() in (self.aggregator.lower(), self.collateral_manager.lower())


@dataclass(frozen=True, slots=True)
class Fact:
    """One recorded chain fact: its id in the ledger, the contract that emitted it and the decoded event."""

    id: int
    address: str
    event: str
    args: Mapping[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int = 0

    @classmethod
    def of_event(cls, event: ChainEvent, fact_id: int) -> Fact:
        return cls(
            fact_id,
            event.address,
            event.event,
            event.args,
            event.block_number,
            event.block_hash,
            event.tx_hash,
            event.log_index,
        )

    @property
    def loan_ref(self) -> int | None:
        """The event's ``loanId`` (the CreditAggregator's numbering), None for an event about no loan."""
        value = self.args.get("loanId")
        return None if value is None else int(value)

    def uint(self, name: str) -> int:
        return int(self.args[name])

    def hex(self, name: str) -> str:
        value = self.args[name]
        return "0x" + bytes(value).hex() if isinstance(value, (bytes, bytearray)) else str(value)

    def checksum(self, name: str) -> str:
        return to_checksum_address(str(self.args[name]))


@dataclass(frozen=True, slots=True)
class LoanState:
    """A loan's ledger record as the projection sees it (amounts in the asset's base units; None where no fact
    told it yet)."""

    id: str
    chain_name: str
    chain_id: int
    contract: str
    created_at: datetime
    offer_digest: str = ""
    quote_id: str | None = None
    borrower_id: str | None = None
    provider_id: str | None = None
    opened_outside_accept: bool = False
    onchain_loan_id: int | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    block_hash: str | None = None
    status: str = ACTIVE
    asset: str = ""
    asset_address: str | None = None
    principal: int = 0
    borrower_address: str | None = None
    pool: str | None = None
    funder: str | None = None
    rate_bps: int | None = None
    term_seconds: int | None = None
    origination_fee: int | None = None
    terms_hash: str | None = None
    outstanding_principal: int | None = None
    interest_paid: int | None = None
    principal_paid: int | None = None
    collateral_asset: str | None = None
    collateral_amount: int | None = None
    closed_tx_hash: str | None = None


@dataclass(frozen=True, slots=True)
class QuoteLink:
    """Our quote of an offer digest, as far as the ledger needs it."""

    id: str
    chain_id: int
    contract: str
    borrower_id: str
    provider_id: str
    status: str


@dataclass(frozen=True, slots=True)
class RepaymentEntry:
    loan_id: str
    fact_id: int
    payer: str
    interest_paid: int
    principal_paid: int
    outstanding_principal: int
    payment_ref: str


@dataclass(frozen=True, slots=True)
class CollateralEntry:
    loan_id: str
    fact_id: int
    direction: str  # "added" | "removed"
    account: str
    asset: str
    amount: int


@dataclass(frozen=True, slots=True)
class LiquidationEntry:
    loan_id: str
    fact_id: int
    liquidator: str
    debt_repaid: int
    collateral_seized: int


Entry = RepaymentEntry | CollateralEntry | LiquidationEntry


def quote_here(chain: LedgerChain, quote: QuoteLink | None) -> QuoteLink | None:
    """``quote`` when it was made on this chain's CreditAggregator (a digest is only ours there), else None."""
    if quote is None or quote.chain_id != chain.chain_id or quote.contract.lower() != chain.aggregator.lower():
        return None
    return quote


def new_loan(
    chain: LedgerChain,
    digest: str,
    quote: QuoteLink | None,
    borrower_id: str | None,
    *,
    via_accept: bool,
    now: datetime,
) -> LoanState:
    """The record a ``LoanOpened`` of ``digest`` creates, from our ``quote`` of it (``quote_here``) or for the
    borrower whose wallet took it; without an accept of ours (the quote not held by one, or no quote) it is flagged
    ``opened_outside_accept``."""
    return LoanState(
        id=loan_id_for(chain.chain_id, chain.aggregator, digest),
        chain_name=chain.name,
        chain_id=chain.chain_id,
        contract=chain.aggregator,
        created_at=now,
        offer_digest=digest,
        quote_id=None if quote is None else quote.id,
        borrower_id=quote.borrower_id if quote is not None else borrower_id,
        provider_id=None if quote is None else quote.provider_id,
        opened_outside_accept=not via_accept and (quote is None or quote.status not in OURS),
    )


def opened(loan: LoanState, chain: LedgerChain, fact: Fact) -> LoanState:
    """``loan`` as its ``LoanOpened`` sets it (again, after a reorg): active, nothing repaid, not closed."""
    pool = fact.checksum("pool")
    asset = fact.checksum("asset")
    principal = fact.uint("principal")
    kept_pool = None if pool.lower() == ZERO_ADDRESS else pool
    return replace(
        loan,
        onchain_loan_id=fact.uint("loanId"),
        offer_digest=fact.hex("offerDigest"),
        tx_hash=fact.tx_hash,
        block_number=fact.block_number,
        block_hash=fact.block_hash,
        status=ACTIVE,
        asset=chain.symbol(asset),
        asset_address=asset,
        principal=principal,
        outstanding_principal=principal,
        interest_paid=0,
        principal_paid=0,
        borrower_address=fact.checksum("borrower"),
        pool=kept_pool,
        funder=kept_pool or fact.hex("providerId"),
        rate_bps=fact.uint("rateBps"),
        term_seconds=fact.uint("term"),
        origination_fee=fact.uint("originationFee"),
        terms_hash=fact.hex("termsHash"),
        collateral_asset=fact.checksum("collateralAsset"),
        collateral_amount=fact.uint("collateralAmount"),
        closed_tx_hash=None,
    )


def moved(loan: LoanState, fact: Fact, *, liquidated_in_tx: bool = False) -> tuple[LoanState, Entry | None]:
    """``loan`` after one of its facts other than ``LoanOpened``, and the entry the fact adds (if any).
    ``liquidated_in_tx``: a liquidation of this loan is recorded from the fact's transaction (asked for
    ``LoanClosed`` only: the CollateralManager emits ``LoanLiquidated`` before the aggregator settles)."""
    event = fact.event
    if event == "LoanRepaid":
        interest, principal = fact.uint("interestPaid"), fact.uint("principalPaid")
        outstanding = fact.uint("outstandingPrincipal")
        loan = replace(
            loan,
            interest_paid=(loan.interest_paid or 0) + interest,
            principal_paid=(loan.principal_paid or 0) + principal,
            outstanding_principal=outstanding,
        )
        payer, ref = fact.checksum("payer"), fact.hex("paymentRef")
        return loan, RepaymentEntry(loan.id, fact.id, payer, interest, principal, outstanding, ref)
    if event == "LoanClosed":
        status = loan.status
        if status in (ACTIVE, DEFAULTED):
            status = LIQUIDATED if liquidated_in_tx else REPAID
        return replace(loan, closed_tx_hash=fact.tx_hash, status=status), None
    if event == "LoanCancelled":
        return replace(loan, status=CANCELLED, outstanding_principal=0), None
    if event == "LoanDefaulted":
        return replace(loan, status=DEFAULTED, outstanding_principal=fact.uint("outstandingPrincipal")), None
    if event == "LoanWrittenOff":
        return replace(loan, status=WRITTEN_OFF, outstanding_principal=0), None
    if event == "LoanLiquidated":
        if loan.status == REPAID and loan.closed_tx_hash == fact.tx_hash:
            loan = replace(loan, status=LIQUIDATED)
        seized = fact.uint("collateralSeized")
        # the seized collateral leaves with no CollateralRemoved of its own (the liquidator is paid in the same call)
        loan = replace(loan, collateral_amount=max(0, (loan.collateral_amount or 0) - seized))
        return loan, LiquidationEntry(loan.id, fact.id, fact.checksum("liquidator"), fact.uint("debtRepaid"), seized)
    if event in ("CollateralAdded", "CollateralRemoved"):
        added = event == "CollateralAdded"
        amount = fact.uint("amount")
        if fact.tx_hash != loan.tx_hash or not added:  # the deposit at opening is in LoanOpened's amount
            held = loan.collateral_amount or 0
            loan = replace(loan, collateral_amount=held + amount if added else max(0, held - amount))
        account, asset = fact.checksum("from" if added else "to"), fact.checksum("asset")
        return loan, CollateralEntry(loan.id, fact.id, "added" if added else "removed", account, asset, amount)
    return loan, None


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """A loan recomputed from its remaining facts: ``loan`` None when it is no loan any more."""

    loan: LoanState | None
    entries: tuple[Entry, ...] = ()


def chain_order(fact: Fact) -> tuple[int, int]:
    """A fact's place in its chain: block number, then log index (the order the chain applied it in)."""
    return fact.block_number, fact.log_index


def caught_up(loan: LoanState, chain: LedgerChain, facts: Sequence[Fact]) -> Rebuilt | None:
    """``loan`` recomputed from ``facts`` (its loan's facts so far, in chain order) when one arrived after a later
    fact of the loan was applied: a receipt's facts are applied at once, and the indexer's confirmed events of
    earlier blocks no receipt recorded (the borrower's own repayment, a third party's liquidation, a
    ``markDefault`` whose receipt was not applied) come after them. ``moved`` does not commute — a late
    ``LoanDefaulted`` would make a closed loan ``defaulted``, a late ``LoanRepaid`` would set its block's outstanding
    principal — so the loan is replayed in chain order (``rebuilt``). None when its opening is not among ``facts``
    (nothing to replay from)."""
    result = rebuilt(loan, chain, facts, reopened=False)
    return result if result.loan is not None else None


def rebuilt(loan: LoanState, chain: LedgerChain, facts: Sequence[Fact], *, reopened: bool) -> Rebuilt:
    """``loan`` recomputed from ``facts`` (its remaining ones, in chain order) after a reorg removed some. A loan
    whose ``LoanOpened`` is gone is no loan — unless the range re-delivers its opening (``reopened``: the
    transaction landed in another block), when it is kept under its id, its on-chain number cleared (it may now be
    another loan's), for that ``LoanOpened`` to fill again."""
    opening = next((f for f in facts if f.event == "LoanOpened" and f.hex("offerDigest") == loan.offer_digest), None)
    if opening is None:
        return Rebuilt(replace(loan, onchain_loan_id=None) if reopened else None)
    state = opened(loan, chain, opening)
    entries: list[Entry] = []
    for fact in facts:
        if fact is opening:
            continue
        liquidated = any(isinstance(e, LiquidationEntry) and _tx(facts, e.fact_id) == fact.tx_hash for e in entries)
        state, entry = moved(state, fact, liquidated_in_tx=liquidated)
        if entry is not None:
            entries.append(entry)
    return Rebuilt(state, tuple(entries))


def _tx(facts: Sequence[Fact], fact_id: int) -> str | None:
    return next((f.tx_hash for f in facts if f.id == fact_id), None)
