"""The loan ledger: every loan's record as a projection of the chain facts of our contracts.

One entry point writes both, in the caller's transaction: ``apply_events(session, chain, events)`` records each
event as a chain fact (unique on chain id, block hash, tx hash and log index) and, only when the fact is new,
applies it to the loan it names. It is idempotent: the accept applies what a receipt shows at once
(``source=SOURCE_RECEIPT``, ``via_accept=True``), the indexer applies the same confirmed events later and nothing
changes twice. ``apply_batch`` is the indexer's: it first deletes the facts of the delivered block range that were
recorded under another block hash (a reorg removed their blocks; also facts recorded early from a receipt), rebuilds
the loans they touched from their remaining facts, then applies the range's events.

How events move a loan (the CreditAggregator's ``LoanStatus`` plus ``written_off``):

* ``LoanOpened`` creates the record: status ``active``, principal outstanding, collateral, funder (the pool, or the
  provider id for a loan funded off-chain), linked to our quote by ``offerDigest``. Without an accept of ours (the
  quote not locked by an accept, or no quote at all) it is flagged ``opened_outside_accept``.
* ``LoanRepaid`` adds a repayment (interest first, then principal) and sets the outstanding principal.
* ``LoanClosed`` is an event, not a status: an active or defaulted loan closed by repayment becomes ``repaid``, or
  ``liquidated`` when a ``LoanLiquidated`` of the same transaction closed it; ``LoanWrittenOff`` (a liquidation that
  ran out of collateral) makes it ``written_off``.
* ``LoanDefaulted`` → ``defaulted``. ``CollateralAdded``/``CollateralRemoved`` move the collateral (the deposit at
  opening is already in ``LoanOpened``'s amount). Every other event is kept as a fact only.

Each new fact that changes a loan also writes its loan event (``aggregator.loan_events``) to the outbox in the same
transaction; a fact applied again writes none, and a reorg's rebuild writes none (its facts' events were written).
An event of a fact the reorg deleted that no remaining fact makes again is cancelled, or retracted with
``loan.event_retracted`` when a recipient had it (``aggregator.retraction``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eth_utils.address import to_checksum_address
from sqlalchemy import select
from sqlalchemy.orm import Session

from aggregator import outbox
from aggregator.errors import AggregatorError
from aggregator.loan_events import loan_event
from aggregator.retraction import RemovedFact, removed_fact, retract_unbacked
from chain.deployment import DeploymentRecord
from chain.events import ChainEvent, EventBatch, EventDecoder, WatchedContract
from store.aggregator import LoanRow, QuoteRow
from store.api import BorrowerRow
from store.ledger import (
    SOURCE_INDEXER,
    SOURCE_RECEIPT,
    ChainFactRow,
    LoanCollateralMovementRow,
    LoanLiquidationRow,
    LoanRepaymentRow,
    SqlLedgerRepository,
)

ACTIVE, REPAID, DEFAULTED, LIQUIDATED, WRITTEN_OFF = "active", "repaid", "defaulted", "liquidated", "written_off"
STATUSES = (ACTIVE, REPAID, DEFAULTED, LIQUIDATED, WRITTEN_OFF)
OURS = ("accepting", "accepted")  # quote statuses that mean an accept of ours holds the quote
ZERO_ADDRESS = "0x" + "00" * 20
_LOAN_IDS = uuid.UUID("6f1d3c0e-8a53-4d1e-9a51-2f7c1b0f3a11")

__all__ = [
    "SOURCE_INDEXER",
    "SOURCE_RECEIPT",
    "STATUSES",
    "LedgerChain",
    "apply_batch",
    "apply_events",
    "loan_id_for",
    "receipt_decoder",
    "watched_contracts",
]


WATCHED_ARTIFACTS = (
    "CreditAggregator",
    "CollateralManager",
    "LendingPool",
    "CreditScoringOracle",
    "TimelockController",
)


def watched_contracts(record: DeploymentRecord) -> list[WatchedContract]:
    """Every contract of ours in a deployment record whose events are chain facts (pools registered later are
    added by the indexer as their ``PoolRegistered`` arrives)."""
    return [
        WatchedContract(key, deployed.address, deployed.artifact)
        for key, deployed in sorted(record.contracts.items())
        if deployed.artifact in WATCHED_ARTIFACTS
    ]


def receipt_decoder(record: DeploymentRecord, codec: Any) -> EventDecoder:
    """Decodes a receipt's logs of the contracts in ``record`` into ``ChainEvent``s for ``apply_events``."""
    decoder = EventDecoder(codec)
    for contract in watched_contracts(record):
        decoder.add(contract)
    return decoder


class LedgerError(AggregatorError):
    """The chain facts contradict the ledger in a way a replay cannot fix (reported, never papered over)."""


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
        symbols = {}
        for symbol in record.parameters.get("tokens", {}):
            if symbol in record.contracts:
                symbols[record.address(symbol).lower()] = symbol
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


def apply_events(
    session: Session,
    chain: LedgerChain,
    events: Iterable[ChainEvent],
    *,
    source: str = SOURCE_INDEXER,
    via_accept: bool = False,
) -> int:
    """Record ``events`` as chain facts and apply the new ones to the ledger, in chain order, in the caller's
    transaction (the caller's unit of work commits). Returns how many facts were new.

    Args:
        source: ``SOURCE_INDEXER`` for confirmed events, ``SOURCE_RECEIPT`` for what an accept read from its
            receipt before confirmation (deleted by the indexer if the block does not survive).
        via_accept: the accept saga records its own loan: never flagged as opened outside an accept (a record the
            indexer flagged first is unflagged).
    """
    repo = SqlLedgerRepository(session)
    ordered = sorted(events, key=lambda e: (e.block_number, e.log_index))
    new = repo.add_facts(
        (
            {
                "chain_id": event.chain_id,
                "contract": event.contract,
                "address": event.address,
                "event": event.event,
                "args": event.args,
                "block_number": event.block_number,
                "block_hash": event.block_hash,
                "tx_hash": event.tx_hash,
                "log_index": event.log_index,
            }
            for event in ordered
        ),
        source,
    )
    for event in ordered:
        if not chain.moves_loans(event.address):
            continue
        fact_id = new.get((event.block_hash, event.tx_hash, event.log_index))
        if fact_id is not None:
            _apply(repo, chain, _Fact.of_event(event, fact_id), via_accept=via_accept)
        elif via_accept and event.event == "LoanOpened":
            _claim_for_accept(repo, chain, int(event.args["loanId"]))
    return len(new)


def apply_batch(session: Session, chain: LedgerChain, batch: EventBatch) -> int:
    """The indexer's writer, run in the transaction that moves the checkpoint: delete the range's facts recorded
    under another block hash (a reorg removed their blocks, or a receipt's block did not survive), rebuild every
    loan they touched from the facts it has left, then record and apply the range's events."""
    repo = SqlLedgerRepository(session)
    stale = repo.stale_facts(chain.chain_id, batch.from_block, batch.to_block, batch.block_hashes)
    removed: list[RemovedFact] = []
    if stale:
        touched: set[str] = set()
        for fact in repo.facts(stale):
            if fact.loan_ref is not None and chain.moves_loans(fact.address):
                loan = _loan(repo, chain, int(fact.loan_ref))
                if loan is not None:
                    touched.add(loan.id)
                    gone = removed_fact(loan, fact)
                    if gone is not None:
                        removed.append(gone)
        repo.delete_facts(stale)
        session.flush()
        reopened = {
            _Fact.of_event(event, 0).hex("offerDigest")
            for event in batch.events
            if event.event == "LoanOpened" and chain.moves_loans(event.address)
        }
        for loan_id in sorted(touched):
            loan = session.get(LoanRow, loan_id)
            if loan is not None:
                _rebuild(repo, chain, loan, reopened=loan.offer_digest in reopened)
    applied = apply_events(session, chain, batch.events)
    if removed:  # their loan events, unless a remaining fact makes them again: cancelled, or retracted out loud
        retract_unbacked(session, (chain.chain_id, chain.aggregator, chain.collateral_manager), removed)
    return applied


@dataclass(frozen=True, slots=True)
class _Fact:
    id: int
    event: str
    args: Mapping[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int = 0

    @classmethod
    def of_event(cls, event: ChainEvent, fact_id: int) -> _Fact:
        return cls(
            fact_id, event.event, event.args, event.block_number, event.block_hash, event.tx_hash, event.log_index
        )

    @classmethod
    def of_row(cls, row: ChainFactRow) -> _Fact:
        return cls(row.id, row.event, row.args, row.block_number, row.block_hash, row.tx_hash, row.log_index)

    def uint(self, name: str) -> int:
        return int(self.args[name])

    def hex(self, name: str) -> str:
        value = self.args[name]
        return "0x" + bytes(value).hex() if isinstance(value, (bytes, bytearray)) else str(value)

    def address(self, name: str) -> str:
        return to_checksum_address(str(self.args[name]))


def _loan(repo: SqlLedgerRepository, chain: LedgerChain, loan_ref: int) -> LoanRow | None:
    return repo.loan_by_onchain_id(chain.chain_id, chain.aggregator, loan_ref)


def _claim_for_accept(repo: SqlLedgerRepository, chain: LedgerChain, loan_ref: int) -> None:
    loan = _loan(repo, chain, loan_ref)
    if loan is not None:
        loan.opened_outside_accept = False


def _apply(repo: SqlLedgerRepository, chain: LedgerChain, fact: _Fact, *, via_accept: bool) -> None:
    if fact.event == "LoanOpened":
        _publish(repo.session, _open(repo, chain, fact, via_accept=via_accept), fact)
        return
    if "loanId" not in fact.args:
        return
    loan = _loan(repo, chain, fact.uint("loanId"))
    if loan is None:  # its LoanOpened is not recorded (read from a later block on): a fact only
        return
    _move(repo, loan, fact)
    _publish(repo.session, loan, fact)


def _publish(session: Session, loan: LoanRow, fact: _Fact) -> None:
    """The fact's loan event, written to the outbox in the ledger's transaction."""
    found = loan_event(
        fact.event,
        fact.args,
        tx_hash=fact.tx_hash,
        log_index=fact.log_index,
        block_number=fact.block_number,
        status_after=loan.status,
    )
    if found is not None:
        session.flush()
        outbox.append(session, loan=loan, event_type=found.event_type, payload=found.data, key=found.key)


def _open(repo: SqlLedgerRepository, chain: LedgerChain, fact: _Fact, *, via_accept: bool) -> LoanRow:
    digest = fact.hex("offerDigest")
    loan = repo.session.get(LoanRow, loan_id_for(chain.chain_id, chain.aggregator, digest))
    if loan is None:  # a record made before ledger ids were derived from the offer digest
        loan = _loan(repo, chain, fact.uint("loanId"))
        if loan is not None and loan.offer_digest != digest:
            raise LedgerError(f"loan {fact.uint('loanId')} on chain {chain.chain_id} is recorded with another offer")
    if loan is None:
        quote = repo.session.scalars(select(QuoteRow).where(QuoteRow.offer_digest == digest)).one_or_none()
        ours = (
            quote is not None
            and quote.chain_id == chain.chain_id
            and quote.contract.lower() == chain.aggregator.lower()
        )
        if not ours:
            quote = None
        borrower_id = quote.borrower_id if quote is not None else _borrower_of(repo.session, fact.address("borrower"))
        loan = LoanRow(
            id=loan_id_for(chain.chain_id, chain.aggregator, digest),
            quote_id=None if quote is None else quote.id,
            borrower_id=borrower_id,
            provider_id=None if quote is None else quote.provider_id,
            chain_name=chain.name,
            chain_id=chain.chain_id,
            contract=chain.aggregator,
            created_at=datetime.now(UTC),
            opened_outside_accept=not via_accept and (quote is None or quote.status not in OURS),
        )
        repo.add(loan)
    elif via_accept:
        loan.opened_outside_accept = False
    _set_opened(loan, chain, fact, digest)
    repo.session.flush()
    return loan


def _borrower_of(session: Session, wallet: str) -> str | None:
    """Our borrower whose registered wallet took the loan, if any (a loan from an offer we never made is still
    theirs to see)."""
    return session.scalars(select(BorrowerRow.id).where(BorrowerRow.wallet_address == wallet)).one_or_none()


def _set_opened(loan: LoanRow, chain: LedgerChain, fact: _Fact, digest: str) -> None:
    pool = fact.address("pool")
    asset = fact.address("asset")
    loan.onchain_loan_id = fact.uint("loanId")
    loan.offer_digest = digest
    loan.tx_hash, loan.block_number, loan.block_hash = fact.tx_hash, fact.block_number, fact.block_hash
    loan.status = ACTIVE
    loan.asset, loan.asset_address = chain.symbol(asset), asset
    loan.principal = loan.outstanding_principal = fact.uint("principal")
    loan.interest_paid = loan.principal_paid = 0
    loan.borrower_address = fact.address("borrower")
    loan.pool = None if pool.lower() == ZERO_ADDRESS else pool
    loan.funder = loan.pool or fact.hex("providerId")
    loan.rate_bps, loan.term_seconds = fact.uint("rateBps"), fact.uint("term")
    loan.origination_fee, loan.terms_hash = fact.uint("originationFee"), fact.hex("termsHash")
    loan.collateral_asset, loan.collateral_amount = fact.address("collateralAsset"), fact.uint("collateralAmount")
    loan.closed_tx_hash = None


def _move(repo: SqlLedgerRepository, loan: LoanRow, fact: _Fact) -> None:
    event = fact.event
    if event == "LoanRepaid":
        interest, principal = fact.uint("interestPaid"), fact.uint("principalPaid")
        loan.interest_paid = (loan.interest_paid or 0) + interest
        loan.principal_paid = (loan.principal_paid or 0) + principal
        loan.outstanding_principal = fact.uint("outstandingPrincipal")
        repo.add(
            LoanRepaymentRow(
                loan_id=loan.id,
                fact_id=fact.id,
                payer=fact.address("payer"),
                interest_paid=interest,
                principal_paid=principal,
                outstanding_principal=loan.outstanding_principal,
                payment_ref=fact.hex("paymentRef"),
            )
        )
    elif event == "LoanClosed":
        loan.closed_tx_hash = fact.tx_hash
        if loan.status in (ACTIVE, DEFAULTED):
            # the CollateralManager emits LoanLiquidated before the aggregator settles (LoanRepaid, LoanClosed)
            loan.status = LIQUIDATED if repo.liquidated_in(loan.id, fact.tx_hash) else REPAID
    elif event == "LoanDefaulted":
        loan.status = DEFAULTED
        loan.outstanding_principal = fact.uint("outstandingPrincipal")
    elif event == "LoanWrittenOff":
        loan.status = WRITTEN_OFF
        loan.outstanding_principal = 0
    elif event == "LoanLiquidated":
        if loan.status == REPAID and loan.closed_tx_hash == fact.tx_hash:
            loan.status = LIQUIDATED
        repo.add(
            LoanLiquidationRow(
                loan_id=loan.id,
                fact_id=fact.id,
                liquidator=fact.address("liquidator"),
                debt_repaid=fact.uint("debtRepaid"),
                collateral_seized=fact.uint("collateralSeized"),
            )
        )
    elif event in ("CollateralAdded", "CollateralRemoved"):
        added = event == "CollateralAdded"
        amount = fact.uint("amount")
        if fact.tx_hash != loan.tx_hash or not added:  # the deposit at opening is in LoanOpened's amount
            held = loan.collateral_amount or 0
            loan.collateral_amount = held + amount if added else max(0, held - amount)
        repo.add(
            LoanCollateralMovementRow(
                loan_id=loan.id,
                fact_id=fact.id,
                direction="added" if added else "removed",
                account=fact.address("from" if added else "to"),
                asset=fact.address("asset"),
                amount=amount,
            )
        )


def _rebuild(repo: SqlLedgerRepository, chain: LedgerChain, loan: LoanRow, *, reopened: bool) -> None:
    """Recompute one loan from its facts after a reorg removed some of them. A loan whose ``LoanOpened`` is gone
    is no loan: its record goes — unless the range re-delivers its opening (the transaction landed in another
    block), when it is kept under its id, emptied, for that ``LoanOpened`` to fill again."""
    facts = [
        _Fact.of_row(row)
        for row in repo.loan_facts(
            chain.chain_id, int(loan.onchain_loan_id or 0), (chain.aggregator, chain.collateral_manager)
        )
    ]
    opened = next((f for f in facts if f.event == "LoanOpened" and f.hex("offerDigest") == loan.offer_digest), None)
    repo.clear_entries(loan.id)
    if opened is None:
        if reopened:
            loan.onchain_loan_id = None  # its number may now be another loan's; LoanOpened sets it again
        else:
            repo.delete_loan(loan)
        repo.session.flush()
        return
    _set_opened(loan, chain, opened, loan.offer_digest)
    for fact in facts:
        if fact is not opened:
            _move(repo, loan, fact)
    repo.session.flush()
