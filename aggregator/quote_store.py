"""What the quoting service stores, and the small interface it stores it through: a credit request with its
providers' outcomes and its signed quotes, the risk decision, the compliance decision records, the sanctions
reviews a refused request opens, and the offer nonces the quotes are signed with. ``store.quoting`` is the SQL
implementation; ``InMemoryQuotingStore`` is the fake for unit tests of the quoting logic.

Offer nonces are reserved for the write of the quotes signed with them (``QuotingStore.writing``): ONE nonce per
chain a request has quotes on, shared by all of them, so the contract itself refuses a second loan from one request.
A nonce whose quotes are never written is simply skipped (the contract keeps a bitmap of used nonces: a nonce only
has to be unused, not gap-free, and an unwritten quote was never answered, so no one holds a signature with it).
Where several writers share the counter (PostgreSQL) the nonces are reserved and committed on their own, before
the quotes are signed, so the counter row is locked for one statement and its commit, not for the whole write;
where writes take turns anyway (SQLite) they are reserved inside the write. On PostgreSQL a process reserves them in
blocks (``store.quoting.OFFER_NONCE_BLOCK`` at a time) and hands them out from memory (``nonces_at_hand``): those it
never hands out are skipped like an unwritten quote's. The counter is per quote signer and
CreditAggregator (``OfferNonceKey``); ``store.aggregator.SqlOfferNonceRepository`` keeps it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from aggregator.owed import Exposure
from aggregator.snapshots import SnapshotUnitOfWork, rolled_back_on_exit
from compliance import DecisionRecord
from risk.repository import StoredDecision


class OfferNonceKey(NamedTuple):
    """Whose offer nonces: a quote signer's, on one CreditAggregator of one chain."""

    chain_id: int
    contract: str
    signer: str


FIRST_OFFER_NONCE = 1


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """What one provider answered to one request: offered, declined, ineligible, failed, timeout or dropped."""

    provider_id: str
    outcome: str
    detail: str
    latency_ms: int


@dataclass(frozen=True, slots=True)
class QuoteRecord:
    """A signed, ranked quote: the EIP-712 offer (with what the lender needs back at accept), its digest and
    signature, the risk attestation and its signature, the Truth in Lending disclosure."""

    id: str
    request_id: str
    borrower_id: str
    provider_id: str
    kind: str
    chain_name: str
    chain_id: int
    contract: str
    rank: int
    offer: dict[str, Any]
    offer_digest: str
    offer_signature: str
    attestation: dict[str, Any]
    attestation_signature: str
    disclosure: dict[str, Any]
    status: str
    expires_at: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CreditRequestRecord:
    id: str
    borrower_id: str
    asset: str
    amount: str
    term_days: int
    purpose: str
    collateral_asset: str
    collateral_amount: str
    preferred_chains: list[str]
    status: str  # quoted, no_offers or declined
    risk: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class QuotedRequest:
    """A credit request as it was written: what the borrower is answered with."""

    request: CreditRequestRecord
    outcomes: list[OutcomeRecord]
    quotes: list[QuoteRecord]


class QuotingRepository(Protocol):
    """The quoting service's storage inside one unit of work (the unit of work commits; this never does)."""

    def reserve_offer_nonces(self, keys: Iterable[OfferNonceKey]) -> dict[OfferNonceKey, int]:
        """The next offer nonce of each key, no other caller gets it (on PostgreSQL the counter rows stay locked
        until the unit of work ends, so ``QuotingStore.writing`` commits them on their own there; taken in key
        order, so two requests never wait on each other crosswise)."""
        ...

    def add_quoted(self, quoted: QuotedRequest, decision: StoredDecision, records: Sequence[DecisionRecord]) -> None:
        """Store a credit request as written (its outcomes and quotes), its risk decision and the compliance
        decision records made for it (screening and offer checks), each decision with its audit entry."""
        ...

    def get_request(self, request_id: str) -> tuple[QuotedRequest, str | None] | None:
        """A credit request as written (its quotes' statuses as they are now), and the id of the loan opened from
        one of its quotes if any."""
        ...

    def get_quote(self, quote_id: str) -> tuple[QuoteRecord, CreditRequestRecord] | None: ...

    def open_screening_reviews(
        self, records: Sequence[DecisionRecord], borrower_id: str, list_version: str, now: datetime
    ) -> list[str]:
        """Store a refused request's screening records and open a sanctions review for each listed entry that held
        or blocked them, and for a name they held as not screened in Latin script; returns the reviews' ids."""
        ...

    def add_refusal(self, record: DecisionRecord, borrower_id: str) -> None:
        """Store the decision record of a credit request refused before it was scored, and so never written (a
        velocity stop, no identity on file: ``aggregator.quote_refusals``), with its audit entry."""
        ...

    def ledger_defaults(self, wallet: str, chain_ids: Sequence[int]) -> int:
        """How many of ``wallet``'s loans on ``chain_ids`` the ledger shows marked in default or written off, now or
        ever (a default later repaid counts, as the chains' own history counts it): what a chain whose history could
        not be read is judged by."""
        ...


class QuotingUnitOfWork(Protocol):
    @property
    def quoting(self) -> QuotingRepository: ...

    def commit(self) -> None: ...


class QuotingStore(Protocol):
    """Opens units of work (one database transaction each; leaving without ``commit`` rolls back)."""

    def unit_of_work(self) -> AbstractContextManager[QuotingUnitOfWork]: ...

    def writing(
        self, nonce_keys: Iterable[OfferNonceKey] = ()
    ) -> AbstractContextManager[tuple[QuotingUnitOfWork, dict[OfferNonceKey, int]]]:
        """The unit of work of a credit request's write (its rows and commit) and the next offer nonce of each of
        ``nonce_keys``, which no other write gets. Where the database takes one writer at a time (SQLite), this
        process's writes take turns on a lock first and the nonces are reserved inside the write; where it takes
        many (PostgreSQL), they are reserved and committed before the write opens (see the module's notes)."""
        ...

    def reserve_ahead(self, nonce_keys: Iterable[OfferNonceKey]) -> dict[OfferNonceKey, int]:
        """The next offer nonce of each of ``nonce_keys`` reserved now, ahead of the write, where a reservation is a
        transaction of its own anyway (PostgreSQL): a credit request reserves its chains' nonces while its providers
        answer, and its write reserves only the keys this did not (a nonce reserved and not used is skipped, which
        the contract's nonce bitmap allows). Where the nonces are reserved inside the write (SQLite, the fake),
        nothing: an empty dict."""
        ...

    def nonces_at_hand(self, nonce_keys: Iterable[OfferNonceKey]) -> dict[OfferNonceKey, int] | None:
        """The next offer nonce of each of ``nonce_keys`` taken from what this process reserved earlier, without
        I/O (called on the event loop), as ``reserve_ahead`` would give them; None when one of them is not at hand:
        then ask ``reserve_ahead`` (in a worker thread), which reserves more (see ``store.quoting``)."""
        ...

    def open_principal(self, borrower_id: str) -> Exposure:
        """The borrower's open principal as the accept counts it (``AcceptRepository.exposure``: what is still owed
        on its active and defaulted loans, and its accepts in flight), read as one snapshot outside any unit of work
        and locking nothing (blocking): what a credit request is quoted under (``aggregator.quote_exposure``); its
        accept counts again, under the borrower's lock."""
        ...


# ---------------------------------------------------------------------------------------------- in-memory fake


@dataclass
class _Tables:
    requests: dict[str, QuotedRequest] = field(default_factory=dict)
    risk_decisions: list[StoredDecision] = field(default_factory=list)
    decision_records: list[DecisionRecord] = field(default_factory=list)
    decision_requests: dict[str, str] = field(default_factory=dict)  # decision id → the credit request's id
    # (borrower, listed entry — or the identity fingerprint of a name not screened) → review id
    reviews: dict[tuple[str, int | str] | tuple[str, int, str | None], str] = field(default_factory=dict)
    next_nonce: dict[OfferNonceKey, int] = field(default_factory=dict)
    ledger_defaults: dict[tuple[str, int], int] = field(default_factory=dict)  # (wallet, chain id) → defaults
    owed: dict[str, dict[str, int]] = field(default_factory=dict)  # borrower → open principal per asset (base units)


class InMemoryQuotingRepository:
    def __init__(self, tables: _Tables) -> None:
        self.tables = tables

    def reserve_offer_nonces(self, keys: Iterable[OfferNonceKey]) -> dict[OfferNonceKey, int]:
        reserved = {}
        for key in sorted(set(keys)):
            reserved[key] = self.tables.next_nonce.get(key, FIRST_OFFER_NONCE)
            self.tables.next_nonce[key] = reserved[key] + 1
        return reserved

    def ledger_defaults(self, wallet: str, chain_ids: Sequence[int]) -> int:
        return sum(self.tables.ledger_defaults.get((wallet.lower(), chain_id), 0) for chain_id in chain_ids)

    def add_quoted(self, quoted: QuotedRequest, decision: StoredDecision, records: Sequence[DecisionRecord]) -> None:
        if quoted.request.id in self.tables.requests:
            raise ValueError(f"credit request {quoted.request.id} is stored already")
        self.tables.requests[quoted.request.id] = quoted
        self.tables.risk_decisions.append(decision)
        self.add_decision_records(records, quoted.request.id)

    def get_request(self, request_id: str) -> tuple[QuotedRequest, str | None] | None:
        quoted = self.tables.requests.get(request_id)
        return None if quoted is None else (quoted, None)  # loans are the accept's: none in this fake

    def get_quote(self, quote_id: str) -> tuple[QuoteRecord, CreditRequestRecord] | None:
        for quoted in self.tables.requests.values():
            for quote in quoted.quotes:
                if quote.id == quote_id:
                    return quote, quoted.request
        return None

    def add_decision_records(self, records: Sequence[DecisionRecord], request_id: str | None = None) -> None:
        self.tables.decision_records.extend(records)
        if request_id is not None:
            self.tables.decision_requests.update((record.decision_id, request_id) for record in records)

    def add_refusal(self, record: DecisionRecord, borrower_id: str) -> None:
        self.add_decision_records([record])

    def open_screening_reviews(
        self, records: Sequence[DecisionRecord], borrower_id: str, list_version: str, now: datetime
    ) -> list[str]:
        self.add_decision_records(records)
        opened = []
        for record in records:
            for hit, _outcome in record.name_hits:
                review = self.tables.reviews.setdefault(
                    (borrower_id, hit.ent_num, record.screened_identity), f"review-{len(self.tables.reviews) + 1}"
                )
                if review not in opened:
                    opened.append(review)
            if record.unscreened_identity is not None:
                review = self.tables.reviews.setdefault(
                    (borrower_id, record.unscreened_identity), f"review-{len(self.tables.reviews) + 1}"
                )
                if review not in opened:
                    opened.append(review)
        return opened


class InMemoryQuotingUnitOfWork(SnapshotUnitOfWork):
    def __init__(self, tables: _Tables) -> None:
        super().__init__(tables)
        self.quoting = InMemoryQuotingRepository(tables)


class InMemoryQuotingStore:
    """The fake for unit tests: one process, transactions as snapshots."""

    def __init__(self) -> None:
        self.tables = _Tables()

    def unit_of_work(self) -> AbstractContextManager[InMemoryQuotingUnitOfWork]:
        return rolled_back_on_exit(InMemoryQuotingUnitOfWork(self.tables))

    @contextmanager
    def writing(
        self, nonce_keys: Iterable[OfferNonceKey] = ()
    ) -> Iterator[tuple[InMemoryQuotingUnitOfWork, dict[OfferNonceKey, int]]]:
        with self.unit_of_work() as uow:
            yield uow, uow.quoting.reserve_offer_nonces(nonce_keys)

    def reserve_ahead(self, nonce_keys: Iterable[OfferNonceKey]) -> dict[OfferNonceKey, int]:
        return {}  # reserved inside the write

    def nonces_at_hand(self, nonce_keys: Iterable[OfferNonceKey]) -> dict[OfferNonceKey, int] | None:
        return None  # reserved inside the write

    def open_principal(self, borrower_id: str) -> Exposure:
        return Exposure(dict(self.tables.owed.get(borrower_id, {})))
