"""Persistence owned by the aggregator: credit requests, each provider's outcome, signed quotes, and loans."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    false,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from aggregator.quote_store import FIRST_OFFER_NONCE, OfferNonceKey
from store.base import Base
from store.types import Uint256, UtcDateTime
from store.unreadable import SHAPE, mapping


class CreditRequestRow(Base):
    __tablename__ = "credit_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    borrower_id: Mapped[str] = mapped_column(ForeignKey("borrowers.id"), index=True)
    asset: Mapped[str] = mapped_column(String(16))
    amount: Mapped[str] = mapped_column(String(80))
    term_days: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(64))
    collateral_asset: Mapped[str] = mapped_column(String(16))
    collateral_amount: Mapped[str] = mapped_column(String(80))
    preferred_chains: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    risk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ProviderOutcomeRow(Base):
    """What one provider answered to one request: offered, declined, failed or timed out."""

    __tablename__ = "provider_outcomes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("credit_requests.id"), index=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(512))
    latency_ms: Mapped[int] = mapped_column(Integer)


class QuoteRow(Base):
    """A signed, ranked quote: the EIP-712 offer, its disclosure and the quote signer's signature."""

    __tablename__ = "quotes"
    __table_args__ = (
        Index("ix_quotes_provider_ref", "provider_id", "provider_ref"),
        # a borrower's accepts in flight (its quotes ``accepting``), read by every credit request's exposure check
        Index("ix_quotes_borrower_status", "borrower_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("credit_requests.id"), index=True)
    borrower_id: Mapped[str] = mapped_column(ForeignKey("borrowers.id"), index=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    chain_name: Mapped[str] = mapped_column(String(64))
    chain_id: Mapped[int] = mapped_column(Integer)
    contract: Mapped[str] = mapped_column(String(42))
    rank: Mapped[int] = mapped_column(Integer)
    offer: Mapped[dict[str, Any]] = mapped_column(JSON, info={SHAPE: mapping})
    #: the lender's own reference of the offer (``providerRef`` in ``offer``), a column of its own for the lookups
    #: by it (``of_offer``): a lender's webhook and its off-chain payments name the offer this way
    provider_ref: Mapped[str | None] = mapped_column(String(), nullable=True)
    offer_digest: Mapped[str] = mapped_column(String(66), unique=True)
    offer_signature: Mapped[str] = mapped_column(String(132))
    attestation: Mapped[dict[str, Any]] = mapped_column(JSON)
    attestation_signature: Mapped[str] = mapped_column(String(132))
    disclosure: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


def of_offer(provider_id: str, provider_ref: str) -> ColumnElement[bool]:
    """The quotes of ``provider_id``'s offer ``provider_ref`` (the lender's own reference, kept in the quote's offer):
    what a lender's webhook names (by the index ``ix_quotes_provider_ref``)."""
    return and_(QuoteRow.provider_id == provider_id, QuoteRow.provider_ref == provider_ref)


def provider_ref_of(offer: dict[str, Any]) -> str | None:
    """The ``provider_ref`` column of a quote whose offer is ``offer``."""
    reference = offer.get("providerRef")
    return None if reference is None else str(reference)


class LoanRow(Base):
    """A loan's ledger record: a projection of its chain facts (``store.ledger``), kept by ``aggregator.ledger``.

    Identity on-chain: (chain id, CreditAggregator address, ``offer_digest``); ``id`` is derived from it
    (``aggregator.ledger.loan_id_for``), so the accept and the indexer name the same loan the same way. ``quote_id``
    is None for a loan opened from an offer we never made; ``opened_outside_accept`` flags a loan the chain shows
    that no accept of ours opened (such a loan never triggers a lender's funding)."""

    __tablename__ = "loans"
    __table_args__ = (
        UniqueConstraint("chain_id", "contract", "offer_digest", name="uq_loans_offer"),
        UniqueConstraint("chain_id", "contract", "onchain_loan_id", name="uq_loans_onchain_loan"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    quote_id: Mapped[str | None] = mapped_column(ForeignKey("quotes.id"), unique=True, nullable=True)
    borrower_id: Mapped[str | None] = mapped_column(ForeignKey("borrowers.id"), index=True, nullable=True)
    provider_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    chain_name: Mapped[str] = mapped_column(String(64))
    chain_id: Mapped[int] = mapped_column(Integer)
    contract: Mapped[str] = mapped_column(String(42))
    onchain_loan_id: Mapped[int | None] = mapped_column(Uint256(), nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    asset: Mapped[str] = mapped_column(String(42))
    principal: Mapped[int] = mapped_column(Uint256())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # the ledger (from LoanOpened and the facts after it)
    offer_digest: Mapped[str] = mapped_column(String(66))
    block_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    borrower_address: Mapped[str | None] = mapped_column(String(42), nullable=True)
    asset_address: Mapped[str | None] = mapped_column(String(42), nullable=True)
    funder: Mapped[str | None] = mapped_column(String(66), nullable=True)
    pool: Mapped[str | None] = mapped_column(String(42), nullable=True)
    rate_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    term_seconds: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    origination_fee: Mapped[int | None] = mapped_column(Uint256(), nullable=True)
    terms_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    outstanding_principal: Mapped[int | None] = mapped_column(Uint256(), nullable=True)
    interest_paid: Mapped[int | None] = mapped_column(Uint256(), nullable=True)
    principal_paid: Mapped[int | None] = mapped_column(Uint256(), nullable=True)
    collateral_asset: Mapped[str | None] = mapped_column(String(42), nullable=True)
    collateral_amount: Mapped[int | None] = mapped_column(Uint256(), nullable=True)
    closed_tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    opened_outside_accept: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class OfferNonceRow(Base):
    """The next unused offer nonce of one quote signer on one CreditAggregator (locked with SELECT … FOR UPDATE).

    The contract keeps used nonces as a bitmap per signer, 256 to a storage word: nonces handed out in sequence
    make most acceptances flip a bit in a word already written (≈5,000 gas) instead of a fresh one (≈22,100)."""

    __tablename__ = "offer_nonces"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    contract: Mapped[str] = mapped_column(String(42), primary_key=True)
    signer: Mapped[str] = mapped_column(String(42), primary_key=True)
    next_nonce: Mapped[int] = mapped_column(BigInteger)


class SqlOfferNonceRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def reserve(self, key: OfferNonceKey, count: int) -> range:
        """The next ``count`` nonces of ``key`` in one statement (UPDATE … RETURNING), its counter row locked until
        the caller's transaction ends. On SQLite the statement takes the database's write lock at once (a read
        first would have to upgrade its snapshot later, and fail rather than wait when another writer went ahead)."""
        if count < 1:
            raise ValueError(f"count must be at least 1: {count}")
        advanced = self._advance(key, count)
        if advanced is None:  # the signer's first offer on this contract: create its counter
            try:
                with self.session.begin_nested():
                    self.session.add(OfferNonceRow(**key._asdict(), next_nonce=FIRST_OFFER_NONCE))
            except IntegrityError:
                pass  # created concurrently by another process: the update below waits for it
            advanced = self._advance(key, count)
            assert advanced is not None
        return range(advanced - count, advanced)

    def _advance(self, key: OfferNonceKey, count: int) -> int | None:
        params = {"key_chain_id": key.chain_id, "key_contract": key.contract, "key_signer": key.signer, "count": count}
        # on the session's connection: a Core statement needs none of the ORM's execution (events, compile state)
        advanced = self.session.connection().execute(_ADVANCE, params).scalar_one_or_none()
        return None if advanced is None else int(advanced)


# A Core statement on the table (the ORM's bulk-update machinery costs more than the statement itself), built once
# with bound parameters: building it per call (three comparisons, SET, RETURNING) cost as much as running it.
_OFFER_NONCES = cast(Table, OfferNonceRow.__table__)
_ADVANCE = (
    update(_OFFER_NONCES)
    .where(
        _OFFER_NONCES.c.chain_id == bindparam("key_chain_id"),
        _OFFER_NONCES.c.contract == bindparam("key_contract"),
        _OFFER_NONCES.c.signer == bindparam("key_signer"),
    )
    .values(next_nonce=_OFFER_NONCES.c.next_nonce + bindparam("count"))
    .returning(_OFFER_NONCES.c.next_nonce)
)
