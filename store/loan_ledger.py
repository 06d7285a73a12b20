"""The loan ledger's repository in SQL (``aggregator.ledger.LedgerRepository``): the projection's plain values
(``aggregator.projection``) in and out, ORM rows (``store.ledger``, ``store.aggregator``) only inside; the loan events
go to the outbox (``aggregator.outbox``) and reorged ones are retracted (``aggregator.retraction``) in the same
session. Never commits: the caller's unit of work does (the indexer's with its checkpoint)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from aggregator import outbox
from aggregator.ledger import record_batch, record_events
from aggregator.loan_events import LoanEvent
from aggregator.outbox import EventLoan, loan_view
from aggregator.projection import (
    CollateralEntry,
    Entry,
    Fact,
    LedgerChain,
    LiquidationEntry,
    LoanState,
    QuoteLink,
    RepaymentEntry,
)
from aggregator.retraction import RemovedFact, retract_unbacked
from chain.events import BatchWriter, ChainEvent, EventBatch
from store.aggregator import LoanRow, QuoteRow
from store.api import BorrowerRow
from store.db import Database
from store.ledger import (
    SOURCE_INDEXER,
    SOURCE_RECEIPT,
    ChainFactRow,
    LoanCollateralMovementRow,
    LoanLiquidationRow,
    LoanRepaymentRow,
    SqlLedgerRepository,
)
from store.outbox import SqlOutboxStore

_STATE_FIELDS = tuple(f.name for f in fields(LoanState))

# The ledger's statements, built once: Core on the tables (the loans' values are ``LoanState``s, never ORM rows, so
# nothing is flushed or tracked per loan). A loan is read FOR UPDATE (nothing on SQLite, one writer anyway): the
# totals written back (``interest_paid``, ``principal_paid``, ...) are the value read plus the fact's, so two
# transactions applying facts of one loan at once on PostgreSQL (the indexer and a receipt) must not both read it
# before either commits, or one's update is lost and no later read repairs it.
_LOANS = cast(Table, LoanRow.__table__)
_LOAN_COLUMNS = tuple(_LOANS.c[name] for name in _STATE_FIELDS)
_LOAN_BY_ID = select(*_LOAN_COLUMNS).where(_LOANS.c.id == bindparam("loan_id")).with_for_update()
_LOAN_BY_ONCHAIN_ID = (
    select(*_LOAN_COLUMNS)
    .where(
        _LOANS.c.chain_id == bindparam("chain_id"),
        _LOANS.c.contract == bindparam("contract"),
        _LOANS.c.onchain_loan_id == bindparam("loan_ref"),
    )
    .with_for_update()
)
_LOAN_TO_OPEN = (
    select(*_LOAN_COLUMNS)
    .where(
        or_(
            _LOANS.c.id == bindparam("loan_id"),
            and_(
                _LOANS.c.chain_id == bindparam("chain_id"),
                _LOANS.c.contract == bindparam("contract"),
                _LOANS.c.onchain_loan_id == bindparam("loan_ref"),
            ),
        )
    )
    .with_for_update()
)
_INSERT_LOAN = _LOANS.insert()
_DELETE_LOAN = delete(_LOANS).where(_LOANS.c.id == bindparam("loan_id"))
_QUOTES = cast(Table, QuoteRow.__table__)
_QUOTE_BY_DIGEST = select(
    _QUOTES.c.id,
    _QUOTES.c.chain_id,
    _QUOTES.c.contract,
    _QUOTES.c.borrower_id,
    _QUOTES.c.provider_id,
    _QUOTES.c.status,
    _QUOTES.c.offer,
).where(_QUOTES.c.offer_digest == bindparam("offer_digest"))
_OFFER_OF_QUOTE = select(_QUOTES.c.offer).where(_QUOTES.c.id == bindparam("quote_id"))
_ENTRY_TABLES: dict[type[Any], tuple[Table, tuple[str, ...]]] = {
    kind: (cast(Table, row.__table__), tuple(f.name for f in fields(kind)))
    for kind, row in (
        (RepaymentEntry, LoanRepaymentRow),
        (CollateralEntry, LoanCollateralMovementRow),
        (LiquidationEntry, LoanLiquidationRow),
    )
}


def _state(row: Any) -> LoanState:
    return LoanState(**row._mapping)


def _fact(row: ChainFactRow) -> Fact:
    return Fact(row.id, row.address, row.event, row.args, row.block_number, row.block_hash, row.tx_hash, row.log_index)


def _offer_ref(offer: Mapping[str, Any] | None) -> str | None:
    """The lender's reference of the offer, as a loan's events name it."""
    found = None if offer is None else offer.get("providerRef")
    return str(found) if found else None


class SqlLedger:
    """The ledger's repository in the caller's session (``aggregator.ledger.LedgerRepository``); never commits.

    One instance serves one application of facts (``apply_events``, ``apply_batch``) and remembers the loans it read
    and wrote meanwhile (every write of a loan in that application goes through it), so that the same row is not
    asked for again within the transaction: a loan id found absent is inserted without a second read, a loan it
    saved is found by its id or on-chain id without a query (a receipt's CollateralAdded after its LoanOpened), and
    an update writes only the columns that changed. The loans are written with Core statements built once, and
    their events go to the outbox from the values saved (the loan is not read back)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._rows = SqlLedgerRepository(session)
        self._outbox = SqlOutboxStore(session)
        self._absent: set[str] = set()  # loan ids ``loan`` found absent and nothing saved since
        self._known: dict[str, LoanState] = {}  # loans as read or saved here, by id
        self._by_onchain: dict[tuple[int, str, int], str] = {}  # their ids by on-chain id
        self._offer_refs: dict[str, str | None] = {}  # the offer reference of quotes read here, by quote id
        self._linked: dict[str, QuoteLink] = {}  # quotes given by the caller, by offer digest (``link_quote``)

    def link_quote(self, offer_digest: str, quote: QuoteLink, offer: Mapping[str, Any] | None) -> None:
        """``quote`` (and its ``offer``) as ``quote_by_digest`` would read it for ``offer_digest``: the caller holds
        the quote in this transaction (an accept recording its loan)."""
        self._linked[offer_digest.lower()] = quote
        self._offer_refs[quote.id] = _offer_ref(offer)

    def add_facts(self, events: Sequence[ChainEvent], source: str) -> dict[tuple[str, str, int], int]:
        return self._rows.add_facts(
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
                for event in events
            ),
            source,
        )

    def stale_facts(
        self, chain_id: int, from_block: int, to_block: int, hashes: Mapping[int, str], mined: Mapping[str, str]
    ) -> list[int]:
        return self._rows.stale_facts(chain_id, from_block, to_block, hashes, mined)

    def facts(self, ids: Iterable[int]) -> list[Fact]:
        return [_fact(row) for row in self._rows.facts(ids)]

    def delete_facts(self, ids: Iterable[int]) -> None:
        self._rows.delete_facts(ids)
        self.session.flush()

    def loan_facts(self, chain_id: int, loan_ref: int, addresses: Iterable[str]) -> list[Fact]:
        return [_fact(row) for row in self._rows.loan_facts(chain_id, loan_ref, addresses)]

    def fact_places(self, chain_id: int, loan_ref: int, addresses: Iterable[str]) -> list[tuple[int, int, int]]:
        return self._rows.fact_places(chain_id, loan_ref, addresses)

    def _remember(self, loan: LoanState) -> LoanState:
        self._forget(loan.id)
        self._known[loan.id] = loan
        if loan.onchain_loan_id is not None:
            self._by_onchain[(loan.chain_id, loan.contract, int(loan.onchain_loan_id))] = loan.id
        return loan

    def _forget(self, loan_id: str) -> None:
        if self._known.pop(loan_id, None) is not None:
            self._by_onchain = {key: kept for key, kept in self._by_onchain.items() if kept != loan_id}

    def loan(self, loan_id: str) -> LoanState | None:
        known = self._known.get(loan_id)
        if known is not None:
            return known
        row = self.session.execute(_LOAN_BY_ID, {"loan_id": loan_id}).one_or_none()
        if row is None:
            self._absent.add(loan_id)
            return None
        return self._remember(_state(row))

    def loan_by_onchain_id(self, chain_id: int, contract: str, loan_ref: int) -> LoanState | None:
        loan_id = self._by_onchain.get((chain_id, contract, loan_ref))
        if loan_id is not None:
            return self._known[loan_id]
        params = {"chain_id": chain_id, "contract": contract, "loan_ref": loan_ref}
        row = self.session.execute(_LOAN_BY_ONCHAIN_ID, params).one_or_none()
        return None if row is None else self._remember(_state(row))

    def loan_to_open(self, loan_id: str, chain_id: int, contract: str, loan_ref: int) -> LoanState | None:
        known = self._known.get(loan_id)
        if known is not None:
            return known
        params = {"loan_id": loan_id, "chain_id": chain_id, "contract": contract, "loan_ref": loan_ref}
        found = [self._remember(_state(row)) for row in self.session.execute(_LOAN_TO_OPEN, params)]
        if all(loan.id != loan_id for loan in found):
            self._absent.add(loan_id)
        return next((loan for loan in found if loan.id == loan_id), found[0] if found else None)

    def quote_by_digest(self, offer_digest: str) -> QuoteLink | None:
        linked = self._linked.get(offer_digest.lower())
        if linked is not None:
            return linked
        row = self.session.execute(_QUOTE_BY_DIGEST, {"offer_digest": offer_digest}).one_or_none()
        if row is None:
            return None
        self._offer_refs[row.id] = _offer_ref(row.offer)
        return QuoteLink(row.id, row.chain_id, row.contract, row.borrower_id, row.provider_id, row.status)

    def borrower_by_wallet(self, wallet: str) -> str | None:
        return self.session.scalars(select(BorrowerRow.id).where(BorrowerRow.wallet_address == wallet)).one_or_none()

    def save_loan(self, loan: LoanState) -> None:
        before = None if loan.id in self._absent else self.loan(loan.id)
        if before is None:
            self.session.execute(_INSERT_LOAN, {name: getattr(loan, name) for name in _STATE_FIELDS})
            self._absent.discard(loan.id)
        else:
            changed = {
                name: getattr(loan, name) for name in _STATE_FIELDS if getattr(before, name) != getattr(loan, name)
            }
            if changed:
                self.session.execute(update(_LOANS).where(_LOANS.c.id == loan.id).values(changed))
        self._remember(loan)

    def add_entry(self, entry: Entry) -> None:
        table, names = _ENTRY_TABLES[type(entry)]
        self.session.execute(table.insert(), {name: getattr(entry, name) for name in names})

    def clear_entries(self, loan_id: str) -> None:
        self._rows.clear_entries(loan_id)

    def delete_loan(self, loan_id: str) -> None:
        if self.loan(loan_id) is not None:
            self._rows.clear_entries(loan_id)
            self.session.execute(_DELETE_LOAN, {"loan_id": loan_id})
            self._forget(loan_id)
            self._absent.add(loan_id)

    def liquidated_in(self, loan_id: str, tx_hash: str) -> bool:
        return self._rows.liquidated_in(loan_id, tx_hash)

    def publish(self, loan: LoanState, event: LoanEvent) -> None:
        """The event from the loan as saved (``loan`` is what ``save_loan`` wrote: not read back)."""
        seen = EventLoan(
            loan.id, loan.provider_id, loan.borrower_id, loan_view(loan, self._offer_ref_of(loan.quote_id))
        )
        outbox.write(self._outbox, seen, event_type=event.event_type, payload=event.data, key=event.key)

    def _offer_ref_of(self, quote_id: str | None) -> str | None:
        if quote_id is None:
            return None
        if quote_id not in self._offer_refs:
            self._offer_refs[quote_id] = _offer_ref(
                self.session.execute(_OFFER_OF_QUOTE, {"quote_id": quote_id}).scalar()
            )
        return self._offer_refs[quote_id]

    def retract_unbacked(self, chain: LedgerChain, removed: Sequence[RemovedFact]) -> None:
        retract_unbacked(self._outbox, self, chain, removed)


# ---------------------------------------------------------------------------------------------- on a session


def apply_events(
    session: Session,
    chain: LedgerChain,
    events: Iterable[ChainEvent],
    *,
    source: str = SOURCE_INDEXER,
    via_accept: bool = False,
) -> int:
    """``aggregator.ledger.record_events`` in ``session``'s transaction (the caller's unit of work commits)."""
    return record_events(SqlLedger(session), chain, events, source=source, via_accept=via_accept)


def apply_accepted_receipt(
    session: Session,
    chain: LedgerChain,
    events: Iterable[ChainEvent],
    loan_id: str,
    quote: tuple[str, QuoteLink, Mapping[str, Any] | None] | None = None,
) -> LoanState | None:
    """``apply_events`` of what an accept read from its receipt (``SOURCE_RECEIPT``, ``via_accept``), and then the
    loan ``loan_id`` as it stands (not read again when the apply read or saved it). ``quote``: the accepted quote's
    offer digest, link and offer, as the ledger would read them by that digest (``SqlLedger.link_quote``)."""
    ledger = SqlLedger(session)
    if quote is not None:
        ledger.link_quote(*quote)
    record_events(ledger, chain, events, source=SOURCE_RECEIPT, via_accept=True)
    return ledger.loan(loan_id)


def apply_batch(session: Session, chain: LedgerChain, batch: EventBatch) -> int:
    """``aggregator.ledger.record_batch`` in ``session``'s transaction, the one that moves the checkpoint."""
    return record_batch(SqlLedger(session), chain, batch)


def batch_writer(chain: LedgerChain) -> BatchWriter:
    """The indexer's writer for ``chain`` (``EventReader.poll(writer=…)``): ``apply_batch``."""

    def write(session: Session, batch: EventBatch) -> None:
        apply_batch(session, chain, batch)

    return write


def apply_in_own_unit(database: Database, chain: LedgerChain, events: Iterable[ChainEvent], *, source: str) -> int:
    """``record_events`` in a unit of work of its own, committed: a receipt's events applied at once."""
    with database.unit_of_work() as uow:
        new = record_events(SqlLedger(uow.session), chain, events, source=source)
        uow.commit()
    return new


def registered_pools(database: Database, chain_id: int, aggregator: str) -> list[str]:
    """The pools the chain facts show registered with ``aggregator`` on ``chain_id``."""
    with database.unit_of_work() as uow:
        return SqlLedgerRepository(uow.session).registered_pools(chain_id, aggregator)
