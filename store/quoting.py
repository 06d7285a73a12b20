"""``aggregator.quote_store``'s interface over SQLAlchemy: credit requests, provider outcomes, quotes, offer nonces,
the risk decision, compliance decision records and sanctions reviews, in one transaction per unit of work."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, exists, func, or_, select
from sqlalchemy.orm import Session

from aggregator.ledger import DEFAULTED, WRITTEN_OFF
from aggregator.owed import Exposure
from aggregator.quote_store import CreditRequestRecord, OfferNonceKey, OutcomeRecord, QuotedRequest, QuoteRecord
from compliance import DecisionRecord
from risk.repository import StoredDecision
from store.accepts import open_principal
from store.aggregator import (
    CreditRequestRow,
    LoanRow,
    ProviderOutcomeRow,
    QuoteRow,
    SqlOfferNonceRepository,
    provider_ref_of,
)
from store.api import lock_borrower
from store.autocommit import autocommit_connection
from store.compliance import AuditEntryRow, ComplianceDecisionRow, SqlDecisionRepository, audit_columns, decision_rows
from store.db import Database
from store.ledger import ChainFactRow
from store.prepared import PreparedInsert, as_one_statement, one_round_trip
from store.records import columns, from_row
from store.risk import RiskDecisionRow, risk_rows
from store.sanctions_reviews import record_screening

#: offer nonces a process reserves at a time for each counter on PostgreSQL (``SqlQuotingStore.reserve_ahead``): one
#: reservation's round trip and worker-thread hop for this many credit requests. Those a process never hands out
#: (it stops) are skipped, which the contract's nonce bitmap allows; a block's nonces fill 1/8 of one bitmap word.
OFFER_NONCE_BLOCK = 32

# the credit request's write: each table's INSERT compiled once per dialect and column set (store.prepared)
_INSERT_REQUEST = PreparedInsert(cast(Table, CreditRequestRow.__table__))
_INSERT_OUTCOMES = PreparedInsert(cast(Table, ProviderOutcomeRow.__table__))
_INSERT_QUOTES = PreparedInsert(cast(Table, QuoteRow.__table__))
_INSERT_RISK_DECISION = PreparedInsert(cast(Table, RiskDecisionRow.__table__))
_INSERT_DECISIONS = PreparedInsert(cast(Table, ComplianceDecisionRow.__table__))
_INSERT_AUDIT_ENTRIES = PreparedInsert(cast(Table, AuditEntryRow.__table__))


class SqlQuotingRepository:
    """Never commits: the unit of work does. With ``staging`` (the credit request's write on PostgreSQL:
    ``SqlQuotingStore.writing``), a credit request added first in its unit of work is not sent at once but kept as
    ONE statement (``staged``) for the unit of work's commit, which sends it alone in autocommit; anything else
    done in the unit of work sends it first, into the unit of work's transaction."""

    def __init__(self, session: Session, staging: bool = False) -> None:
        self.session = session
        self.staged: tuple[str, tuple[str, ...]] | None = None
        self._staging = staging

    def reserve_offer_nonces(self, keys: Iterable[OfferNonceKey]) -> dict[OfferNonceKey, int]:
        self.send_staged()
        nonces = SqlOfferNonceRepository(self.session)
        return {key: nonces.reserve(key, 1).start for key in sorted(set(keys))}

    def add_quoted(self, quoted: QuotedRequest, decision: StoredDecision, records: Sequence[DecisionRecord]) -> None:
        # INSERTs compiled once (store.prepared), not ORM objects through the flush nor INSERTs of ORM entities (the
        # ORM's bulk machinery, a cache key per call) nor Core's per-row parameter construction: the request path
        # writes these rows and reads none of them back. The request row first, for the rows that refer to it; the
        # risk decision's audit entry and the compliance decisions' in one statement, in that order.
        inserts = _quoted_rows(quoted, decision, records)
        if self._staging and self.staged is None and not self.session.in_transaction():
            # the unit of work's only write: its six tables' rows as one statement (PostgreSQL), sent at the commit
            self.staged = as_one_statement(self.session.get_bind().dialect, inserts)
            if self.staged is not None:
                return
        self.send_staged()
        self.session.flush()  # nothing is pending on this path; were anything, it would go first
        connection = self.session.connection()
        # on the unit of work's connection (executemany where there are several rows), in one round trip
        with one_round_trip(connection):
            for insert_, rows in inserts:
                insert_.execute(connection, rows)

    def send_staged(self) -> None:
        """The staged write (if any) sent now, into the unit of work's transaction."""
        if self.staged is not None:
            statement, self.staged = self.staged, None
            self.session.connection().exec_driver_sql(*statement)

    def get_request(self, request_id: str) -> tuple[QuotedRequest, str | None] | None:
        self.send_staged()
        row = self.session.get(CreditRequestRow, request_id)
        if row is None:
            return None
        quotes = list(self.session.scalars(select(QuoteRow).where(QuoteRow.request_id == request_id)))
        outcomes = self.session.scalars(
            select(ProviderOutcomeRow)
            .where(ProviderOutcomeRow.request_id == request_id)
            .order_by(ProviderOutcomeRow.id)
        )
        loan_id = self.session.scalars(
            select(LoanRow.id).where(LoanRow.quote_id.in_([quote.id for quote in quotes]))
        ).first()
        quoted = QuotedRequest(
            from_row(CreditRequestRecord, row),
            [from_row(OutcomeRecord, outcome) for outcome in outcomes],
            [from_row(QuoteRecord, quote) for quote in sorted(quotes, key=lambda quote: quote.rank)],
        )
        return quoted, loan_id

    def get_quote(self, quote_id: str) -> tuple[QuoteRecord, CreditRequestRecord] | None:
        self.send_staged()
        row = self.session.get(QuoteRow, quote_id)
        if row is None:
            return None
        request = self.session.get(CreditRequestRow, row.request_id)
        assert request is not None  # a foreign key
        return from_row(QuoteRecord, row), from_row(CreditRequestRecord, request)

    def add_refusal(self, record: DecisionRecord, borrower_id: str) -> None:
        self.send_staged()
        lock_borrower(self.session, borrower_id, exclusive=False)  # an erasure of the borrower waits for it
        SqlDecisionRepository(self.session).insert_all([record])

    def open_screening_reviews(
        self, records: Sequence[DecisionRecord], borrower_id: str, list_version: str, now: datetime
    ) -> list[str]:
        self.send_staged()
        reviews = record_screening(self.session, records, borrower_id, list_version, now)
        return [review.id for review in reviews.values()]

    def ledger_defaults(self, wallet: str, chain_ids: Sequence[int]) -> int:
        defaulted = exists().where(
            ChainFactRow.chain_id == LoanRow.chain_id,
            ChainFactRow.loan_ref == LoanRow.onchain_loan_id,
            func.lower(ChainFactRow.address) == func.lower(LoanRow.contract),
            ChainFactRow.event.in_(DEFAULT_EVENTS),
        )
        counted = select(func.count(LoanRow.id)).where(
            LoanRow.chain_id.in_(list(chain_ids)),
            func.lower(LoanRow.borrower_address) == wallet.lower(),
            or_(LoanRow.status.in_((DEFAULTED, WRITTEN_OFF)), defaulted),
        )
        return int(self.session.execute(counted).scalar_one())


#: the CreditAggregator's events of a loan marked in default or written off as bad debt
DEFAULT_EVENTS = ("LoanDefaulted", "LoanWrittenOff")

_record = from_row  # the name store.request_pages reads quote rows with


def quote_columns(quote: QuoteRecord) -> dict[str, Any]:
    """A quote's row: its record's fields and the lender's reference of its offer (``provider_ref``)."""
    return columns(quote) | {"provider_ref": provider_ref_of(quote.offer)}


def _quoted_rows(
    quoted: QuotedRequest, decision: StoredDecision, records: Sequence[DecisionRecord]
) -> list[tuple[PreparedInsert, list[dict[str, Any]]]]:
    """A credit request's rows by table, in the order they are inserted (tables without rows left out)."""
    request_id = quoted.request.id
    risk, risk_audit = risk_rows(decision)
    decisions, audits = decision_rows(records, request_id)
    inserts = [
        (_INSERT_REQUEST, [columns(quoted.request)]),
        (_INSERT_OUTCOMES, [columns(outcome) | {"request_id": request_id} for outcome in quoted.outcomes]),
        (_INSERT_QUOTES, [quote_columns(quote) for quote in quoted.quotes]),
        (_INSERT_RISK_DECISION, [risk]),
        (_INSERT_DECISIONS, decisions),
        (_INSERT_AUDIT_ENTRIES, [audit_columns(*audit) for audit in (risk_audit, *audits)]),
    ]
    return [(insert_, rows) for insert_, rows in inserts if rows]


class SqlQuotingUnitOfWork:
    """``writes`` (PostgreSQL's engine, for the credit request's write): a write staged by the repository is sent at
    the commit as one statement in autocommit, where nothing else was done in the unit of work: its own transaction,
    one round trip instead of ``BEGIN``, the INSERTs and ``COMMIT``. Leaving without the commit sends nothing."""

    def __init__(self, session: Session, commit: Callable[[], None], writes: Engine | None = None) -> None:
        self.quoting = SqlQuotingRepository(session, staging=writes is not None)
        self._commit = commit
        self._writes = writes

    def commit(self) -> None:
        staged = self.quoting.staged
        if staged is not None and self._writes is not None and not self.quoting.session.in_transaction():
            self.quoting.staged = None
            with autocommit_connection(self._writes) as connection:
                connection.exec_driver_sql(*staged)  # errors as any statement's: IntegrityError, OperationalError …
            return
        self.quoting.send_staged()
        self._commit()


class SqlQuotingStore:
    def __init__(self, database: Database) -> None:
        self._db = database
        # SQLite has one writer at a time, and a writer that finds the database locked sleeps and retries (1, 2,
        # 5, 10 … 100 ms: SQLite's busy handler) instead of waking when the lock is released: at ten concurrent
        # credit requests the writes queued for tens to hundreds of milliseconds. This process's quote writes take
        # turns on a lock instead, handed over at once, and reserve their offer nonces inside the turn (one
        # transaction, one commit). PostgreSQL's row locks already wake their waiters, but the offer-nonce counter
        # row is every write's: reserved inside the write, it stayed locked while the quotes were signed and the
        # rows written, and every credit request of every process queued on it for that long. There the nonces
        # are reserved in a transaction of their own, committed at once: the row is locked for the UPDATE and the
        # COMMIT. A write that fails afterwards leaves its nonces unused, which the contract's nonce bitmap allows.
        self._turns = threading.Lock() if database.engine.dialect.name == "sqlite" else None
        # PostgreSQL: offer nonces this process reserved in blocks and has not handed out yet (``reserve_ahead``)
        self._at_hand: dict[OfferNonceKey, deque[int]] = {}
        self._held = threading.Lock()

    @contextmanager
    def unit_of_work(self) -> Iterator[SqlQuotingUnitOfWork]:
        with self._db.unit_of_work() as uow:
            yield SqlQuotingUnitOfWork(uow.session, uow.commit)

    @contextmanager
    def writing(
        self, nonce_keys: Iterable[OfferNonceKey] = ()
    ) -> Iterator[tuple[SqlQuotingUnitOfWork, dict[OfferNonceKey, int]]]:
        if self._turns is None:
            nonces = self.reserve_offer_nonces(nonce_keys)
            # the request's rows sent at the commit as one statement in autocommit (SqlQuotingUnitOfWork)
            with self._db.unit_of_work() as uow:
                yield SqlQuotingUnitOfWork(uow.session, uow.commit, writes=self._db.engine), nonces
            return
        with self._turns, self.unit_of_work() as uow:
            yield uow, uow.quoting.reserve_offer_nonces(nonce_keys)

    def reserve_ahead(self, nonce_keys: Iterable[OfferNonceKey]) -> dict[OfferNonceKey, int]:
        """On PostgreSQL the next nonce of each key: from the block this process reserved for it earlier, or, where
        that is used up, from a new block of :data:`OFFER_NONCE_BLOCK` reserved now in a transaction of its own
        (one statement for all such keys: ``_reserve_at_once``); the block's other nonces are kept for the next
        requests (``nonces_at_hand``). On SQLite nothing: there they are reserved inside the write's turn, one
        transaction and one commit."""
        if self._turns is not None:
            return {}
        keys = sorted(set(nonce_keys))
        with self._held:
            taken = self._take(keys)
        missing = [key for key in keys if key not in taken]
        if missing:
            blocks = self._reserve_blocks(missing)
            with self._held:
                for key, block in blocks.items():
                    taken[key] = block.start
                    self._at_hand.setdefault(key, deque()).extend(block[1:])
        return taken

    def nonces_at_hand(self, nonce_keys: Iterable[OfferNonceKey]) -> dict[OfferNonceKey, int] | None:
        """On PostgreSQL the next nonce of each key from the blocks ``reserve_ahead`` reserved, without I/O; None
        (nothing taken) when a key's block is used up. On SQLite None: nothing is reserved ahead there."""
        if self._turns is not None:
            return None
        keys = sorted(set(nonce_keys))
        with self._held:
            if any(not self._at_hand.get(key) for key in keys):
                return None
            return self._take(keys)

    def open_principal(self, borrower_id: str) -> Exposure:
        # one statement is its own transaction: read in autocommit, one round trip (store.autocommit)
        with autocommit_connection(self._db.engine) as connection:
            return open_principal(connection, borrower_id)

    def _take(self, keys: Sequence[OfferNonceKey]) -> dict[OfferNonceKey, int]:
        """The next nonce at hand of each key that has one (the caller holds ``_held``)."""
        return {key: self._at_hand[key].popleft() for key in keys if self._at_hand.get(key)}

    def _reserve_blocks(self, keys: Sequence[OfferNonceKey]) -> dict[OfferNonceKey, range]:
        """A new block of :data:`OFFER_NONCE_BLOCK` nonces for each key, committed in a transaction of its own."""
        blocks = {
            key: range(start, start + OFFER_NONCE_BLOCK)
            for key, start in _reserve_at_once(self._db.engine, keys, OFFER_NONCE_BLOCK).items()
        }
        missing = [key for key in keys if key not in blocks]
        if missing:  # the signer's first offers on these contracts: their counters created
            with self.unit_of_work() as uow:
                nonces = SqlOfferNonceRepository(uow.quoting.session)
                blocks |= {key: nonces.reserve(key, OFFER_NONCE_BLOCK) for key in missing}
                uow.commit()
        return blocks

    def reserve_offer_nonces(self, keys: Iterable[OfferNonceKey]) -> dict[OfferNonceKey, int]:
        """The next offer nonce of each key, reserved and committed in a transaction of its own (none without
        keys): its counter rows are locked from the UPDATE to the COMMIT only. On PostgreSQL that transaction is
        ONE statement in autocommit (``_RESERVE_AT_ONCE``: every key's counter advanced at once, the rows locked in
        key order and for that statement only): one round trip where ``BEGIN``, an ``UPDATE … RETURNING`` per key
        and ``COMMIT`` took one each. A key without a counter yet (the signer's first offer on that contract) is
        reserved as before, which creates it."""
        keys = sorted(set(keys))
        if not keys:
            return {}
        nonces: dict[OfferNonceKey, int] = {}
        if self._turns is None and self._db.engine.dialect.name == "postgresql":
            nonces = _reserve_at_once(self._db.engine, keys)
            keys = [key for key in keys if key not in nonces]
            if not keys:
                return nonces
        with self.unit_of_work() as uow:
            nonces |= uow.quoting.reserve_offer_nonces(keys)
            uow.commit()
        return nonces


# Every key's next offer nonce in one statement (PostgreSQL): the counter rows locked in key order (the order
# ``reserve_offer_nonces`` takes them in: Python's, hence the "C" collation), so two reservations never wait on each
# other crosswise, then each advanced by one. In autocommit the statement is its own transaction: the rows stay
# locked for it alone. Keys without a counter row are simply not returned.
_RESERVE_AT_ONCE = """\
WITH wanted AS (
    SELECT * FROM unnest(%(chain_ids)s::bigint[], %(contracts)s::varchar[], %(signers)s::varchar[])
        AS k(chain_id, contract, signer)
), locked AS (
    SELECT n.chain_id, n.contract, n.signer FROM offer_nonces AS n JOIN wanted USING (chain_id, contract, signer)
    ORDER BY n.chain_id, n.contract COLLATE "C", n.signer COLLATE "C" FOR UPDATE OF n
)
UPDATE offer_nonces AS n SET next_nonce = n.next_nonce + %(count)s::bigint FROM locked
WHERE n.chain_id = locked.chain_id AND n.contract = locked.contract AND n.signer = locked.signer
RETURNING n.chain_id, n.contract, n.signer, n.next_nonce"""


def _reserve_at_once(engine: Engine, keys: Sequence[OfferNonceKey], count: int = 1) -> dict[OfferNonceKey, int]:
    """The next ``count`` offer nonces of each of ``keys`` that has a counter (the first of them by key), in one
    statement in autocommit (PostgreSQL)."""
    params = {
        "count": count,
        "chain_ids": [key.chain_id for key in keys],
        "contracts": [key.contract for key in keys],
        "signers": [key.signer for key in keys],
    }
    with autocommit_connection(engine) as connection:
        rows = connection.exec_driver_sql(_RESERVE_AT_ONCE, params).all()
    return {
        OfferNonceKey(int(chain_id), contract, signer): int(advanced) - count
        for chain_id, contract, signer, advanced in rows
    }
