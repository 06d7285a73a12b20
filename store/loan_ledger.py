"""The loan ledger's repository in SQL (``aggregator.ledger.LedgerRepository``): the projection's plain values
(``aggregator.projection``) in and out, ORM rows (``store.ledger``, ``store.aggregator``) only inside; the loan events
go to the outbox (``aggregator.outbox``) and reorged ones are retracted (``aggregator.retraction``) in the same
session. Never commits: the caller's unit of work does (the indexer's with its checkpoint)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields

from sqlalchemy import select
from sqlalchemy.orm import Session

from aggregator import outbox
from aggregator.ledger import record_batch, record_events
from aggregator.loan_events import LoanEvent
from aggregator.projection import (
    CollateralEntry,
    Entry,
    Fact,
    LedgerChain,
    LoanState,
    QuoteLink,
    RepaymentEntry,
)
from aggregator.retraction import RemovedFact, retract_unbacked
from chain.events import BatchWriter, ChainEvent, EventBatch
from store.aggregator import LoanRow, QuoteRow
from store.api import BorrowerRow
from store.base import Base
from store.db import Database
from store.ledger import (
    SOURCE_INDEXER,
    ChainFactRow,
    LoanCollateralMovementRow,
    LoanLiquidationRow,
    LoanRepaymentRow,
    SqlLedgerRepository,
)
from store.outbox import SqlOutboxStore

_STATE_FIELDS = tuple(f.name for f in fields(LoanState))


def _state(row: LoanRow) -> LoanState:
    return LoanState(**{name: getattr(row, name) for name in _STATE_FIELDS})


def _fact(row: ChainFactRow) -> Fact:
    return Fact(row.id, row.address, row.event, row.args, row.block_number, row.block_hash, row.tx_hash, row.log_index)


def _entry_row(entry: Entry) -> Base:
    if isinstance(entry, RepaymentEntry):
        return LoanRepaymentRow(
            loan_id=entry.loan_id,
            fact_id=entry.fact_id,
            payer=entry.payer,
            interest_paid=entry.interest_paid,
            principal_paid=entry.principal_paid,
            outstanding_principal=entry.outstanding_principal,
            payment_ref=entry.payment_ref,
        )
    if isinstance(entry, CollateralEntry):
        return LoanCollateralMovementRow(
            loan_id=entry.loan_id,
            fact_id=entry.fact_id,
            direction=entry.direction,
            account=entry.account,
            asset=entry.asset,
            amount=entry.amount,
        )
    return LoanLiquidationRow(
        loan_id=entry.loan_id,
        fact_id=entry.fact_id,
        liquidator=entry.liquidator,
        debt_repaid=entry.debt_repaid,
        collateral_seized=entry.collateral_seized,
    )


class SqlLedger:
    """The ledger's repository in the caller's session (``aggregator.ledger.LedgerRepository``); never commits.

    One instance serves one application of facts (``apply_events``, ``apply_batch``) and remembers what it read and
    wrote of the loans meanwhile, so that the same row is not asked for again within the transaction: a loan id
    found absent is inserted without a second read, and a loan it saved is found by its on-chain id without a
    query (a receipt's CollateralLocked after its LoanOpened)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._rows = SqlLedgerRepository(session)
        self._absent: set[str] = set()  # loan ids ``loan`` found absent and nothing saved since
        self._by_onchain: dict[tuple[int, str, int], LoanRow] = {}  # loans saved here, by their on-chain id

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

    def stale_facts(self, chain_id: int, from_block: int, to_block: int, hashes: Mapping[int, str]) -> list[int]:
        return self._rows.stale_facts(chain_id, from_block, to_block, hashes)

    def facts(self, ids: Iterable[int]) -> list[Fact]:
        return [_fact(row) for row in self._rows.facts(ids)]

    def delete_facts(self, ids: Iterable[int]) -> None:
        self._rows.delete_facts(ids)
        self.session.flush()

    def loan_facts(self, chain_id: int, loan_ref: int, addresses: Iterable[str]) -> list[Fact]:
        return [_fact(row) for row in self._rows.loan_facts(chain_id, loan_ref, addresses)]

    def loan(self, loan_id: str) -> LoanState | None:
        row = self.session.get(LoanRow, loan_id)
        if row is None:
            self._absent.add(loan_id)
            return None
        return _state(row)

    def loan_by_onchain_id(self, chain_id: int, contract: str, loan_ref: int) -> LoanState | None:
        row = self._by_onchain.get((chain_id, contract, loan_ref))
        if row is None:
            row = self._rows.loan_by_onchain_id(chain_id, contract, loan_ref)
        return None if row is None else _state(row)

    def quote_by_digest(self, offer_digest: str) -> QuoteLink | None:
        quote = self.session.scalars(select(QuoteRow).where(QuoteRow.offer_digest == offer_digest)).one_or_none()
        if quote is None:
            return None
        return QuoteLink(quote.id, quote.chain_id, quote.contract, quote.borrower_id, quote.provider_id, quote.status)

    def borrower_by_wallet(self, wallet: str) -> str | None:
        return self.session.scalars(select(BorrowerRow.id).where(BorrowerRow.wallet_address == wallet)).one_or_none()

    def save_loan(self, loan: LoanState) -> None:
        row = None if loan.id in self._absent else self.session.get(LoanRow, loan.id)
        self._absent.discard(loan.id)
        if row is None:
            row = LoanRow(**{name: getattr(loan, name) for name in _STATE_FIELDS})
            self.session.add(row)
            self.session.flush()
        else:
            for name in _STATE_FIELDS:
                value = getattr(loan, name)
                if getattr(row, name) != value:
                    setattr(row, name, value)
        self._by_onchain = {key: kept for key, kept in self._by_onchain.items() if kept is not row}
        if loan.onchain_loan_id is not None:
            self._by_onchain[(loan.chain_id, loan.contract, int(loan.onchain_loan_id))] = row

    def add_entry(self, entry: Entry) -> None:
        self.session.add(_entry_row(entry))

    def clear_entries(self, loan_id: str) -> None:
        self._rows.clear_entries(loan_id)

    def delete_loan(self, loan_id: str) -> None:
        row = self.session.get(LoanRow, loan_id)
        if row is not None:
            self._by_onchain = {key: kept for key, kept in self._by_onchain.items() if kept is not row}
            self._rows.delete_loan(row)
            self.session.flush()

    def liquidated_in(self, loan_id: str, tx_hash: str) -> bool:
        return self._rows.liquidated_in(loan_id, tx_hash)

    def publish(self, loan: LoanState, event: LoanEvent) -> None:
        self.session.flush()
        outbox.append(
            SqlOutboxStore(self.session),
            loan_id=loan.id,
            event_type=event.event_type,
            payload=event.data,
            key=event.key,
        )

    def retract_unbacked(self, chain: LedgerChain, removed: Sequence[RemovedFact]) -> None:
        retract_unbacked(SqlOutboxStore(self.session), self, chain, removed)


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
