"""Synthetic chain facts of one loan for the ledger and the outbox (no chain needed): events as the indexer
decodes them, each in its own block, and the records that make a loan ours (borrower, request, quote); and the rows
the accept's and the quoting's SQL reads count (a quote on ``CHAIN``, its accept locked, a loan of the ledger)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aggregator.accept_saga import AcceptRecord, AcceptStep
from aggregator.ledger import LedgerChain, loan_id_for
from chain.events import ChainEvent
from store.accepts import SqlAcceptStore
from store.aggregator import CreditRequestRow, LoanRow, QuoteRow, provider_ref_of
from store.api import BorrowerRow
from store.db import Database

AGGREGATOR = "0x" + "a1" * 20
COLLATERAL_MANAGER = "0x" + "c1" * 20
USDC = "0x" + "05" * 20
WETH = "0x" + "0e" * 20
CHAIN = LedgerChain("ethereum-local", 31337, AGGREGATOR, COLLATERAL_MANAGER, {USDC: "USDC"})


class LoanFacts:
    """The facts of one loan numbered ``loan_ref`` taken by ``borrower`` (a fresh address by default)."""

    def __init__(self, loan_ref: int, borrower: str | None = None) -> None:
        self.loan_ref = loan_ref
        self.borrower = borrower or "0x" + uuid.uuid4().hex[:20] * 2
        self.digest = "0x" + uuid.uuid4().hex * 2
        self.block = 100

    @property
    def loan_id(self) -> str:
        return loan_id_for(CHAIN.chain_id, AGGREGATOR, self.digest)

    def event(self, name: str, address: str = AGGREGATOR, **args: Any) -> ChainEvent:
        self.block += 1
        return ChainEvent(
            chain_id=CHAIN.chain_id,
            contract="CreditAggregator",
            address=address,  # type: ignore[arg-type]
            event=name,
            args={"loanId": self.loan_ref, **args},
            block_number=self.block,
            block_hash="0x" + f"{self.block:064x}",
            tx_hash="0x" + uuid.uuid4().hex * 2,
            log_index=0,
        )

    def opened(self) -> ChainEvent:
        return self.event(
            "LoanOpened",
            borrower=self.borrower,
            providerId=b"\x11" * 32,
            pool="0x" + "00" * 20,
            asset=USDC,
            principal=1_000_000_000,
            originationFee=5_000_000,
            rateBps=900,
            term=30 * 86_400,
            termsHash=b"\x22" * 32,
            collateralAsset=WETH,
            collateralAmount=10**18,
            offerDigest=bytes.fromhex(self.digest[2:]),
        )

    def repaid(self, interest: int, principal: int, outstanding: int) -> ChainEvent:
        return self.event(
            "LoanRepaid",
            payer=self.borrower,
            interestPaid=interest,
            principalPaid=principal,
            outstandingPrincipal=outstanding,
            paymentRef=b"\x00" * 32,
        )

    def closed(self) -> ChainEvent:
        return self.event("LoanClosed")

    def quoted_by(self, database: Database, provider_id: str, borrower_id: str | None = None) -> str:
        """Make the loan ours: a borrower (``borrower_id``, or a new one with this wallet), its request and
        ``provider_id``'s accepted quote of this offer digest. The borrower's id."""
        return add_quote(
            database,
            borrower_address=self.borrower,
            offer_digest=self.digest,
            provider_id=provider_id,
            chain_name=CHAIN.name,
            chain_id=CHAIN.chain_id,
            contract=AGGREGATOR,
            offer={"providerRef": f"ref-{self.loan_ref}"},
            borrower_id=borrower_id,
        )


def add_quote(
    database: Database,
    *,
    borrower_address: str,
    offer_digest: str,
    provider_id: str,
    chain_name: str,
    chain_id: int,
    contract: str,
    kind: str = "traditional",
    offer: dict[str, Any] | None = None,
    disclosure: dict[str, Any] | None = None,
    borrower_id: str | None = None,
    status: str = "accepted",
    quote_id: str | None = None,
) -> str:
    """A quote of ours for the offer ``offer_digest`` (``accepted`` unless ``status`` says otherwise; its request
    ``accepted`` with it, else ``quoted``), with its borrower (``borrower_id``, or a new one with ``borrower_address``
    as its wallet) and request: a loan opened from that offer is ``provider_id``'s. The borrower's id."""
    now = datetime.now(UTC)
    request_id, quote_id = str(uuid.uuid4()), quote_id or str(uuid.uuid4())
    borrower_id = borrower_id or add_borrower(database, borrower_address)
    with database.unit_of_work() as uow:
        uow.session.add(
            CreditRequestRow(
                id=request_id,
                borrower_id=borrower_id,
                asset="USDC",
                amount="1000",
                term_days=30,
                purpose="test",
                collateral_asset="WETH",
                collateral_amount="1",
                preferred_chains=[],
                status="accepted" if status == "accepted" else "quoted",
                risk={},
                created_at=now,
            )
        )
        uow.session.flush()
        uow.session.add(
            QuoteRow(
                id=quote_id,
                request_id=request_id,
                borrower_id=borrower_id,
                provider_id=provider_id,
                kind=kind,
                chain_name=chain_name,
                chain_id=chain_id,
                contract=contract,
                rank=1,
                offer=offer or {},
                provider_ref=provider_ref_of(offer or {}),
                offer_digest=offer_digest,
                offer_signature="0x",
                attestation={},
                attestation_signature="0x",
                disclosure=disclosure or {"asset": "USDC"},
                status=status,
                expires_at=now + timedelta(hours=1),
                created_at=now,
            )
        )
        uow.commit()
    return borrower_id


def new_wallet() -> str:
    """A fresh wallet address (lower case), not any account's."""
    return "0x" + uuid.uuid4().hex[:20] * 2


def add_borrower(database: Database, wallet: str | None = None) -> str:
    """A borrower in ``US-NY`` with ``wallet`` (a fresh one by default); its id."""
    borrower_id = str(uuid.uuid4())
    with database.unit_of_work() as uow:
        uow.session.add(
            BorrowerRow(
                id=borrower_id,
                wallet_address=wallet or new_wallet(),
                jurisdiction="US-NY",
                created_at=datetime.now(UTC),
            )
        )
        uow.commit()
    return borrower_id


def new_quote(
    database: Database,
    *,
    status: str,
    provider_id: str = "pool:usdc",
    kind: str = "pool",
    principal: int | None = None,
    offer: dict[str, Any] | None = None,
    borrower_id: str | None = None,
    quote_id: str | None = None,
    chain_name: str = CHAIN.name,
) -> tuple[str, str]:
    """``add_quote`` of a new offer digest on ``CHAIN``'s aggregator (by ``chain_name``), a ``kind`` quote of
    ``provider_id`` at ``status``, its ``offer`` the given one or ``{"principal": principal}`` (base units); of a
    new borrower with a fresh wallet unless ``borrower_id``. (The borrower's id, the quote's id.)"""
    quote_id = quote_id or str(uuid.uuid4())
    if offer is None and principal is not None:
        offer = {"principal": str(principal)}
    borrower = add_quote(
        database,
        borrower_address=new_wallet(),
        offer_digest="0x" + uuid.uuid4().hex * 2,
        provider_id=provider_id,
        chain_name=chain_name,
        chain_id=CHAIN.chain_id,
        contract=AGGREGATOR,
        kind=kind,
        offer=offer,
        borrower_id=borrower_id,
        status=status,
        quote_id=quote_id,
    )
    return borrower, quote_id


def lock_accept(
    store: SqlAcceptStore,
    quote_id: str,
    at: datetime,
    *,
    step: AcceptStep = AcceptStep.SIMULATED,
    owner: str = "accept-1",
) -> AcceptRecord:
    """The quote locked for its first accept attempt at ``step`` by ``owner`` (its lease ending ``at``), as
    ``AcceptanceService._lock`` does: the request's other quotes superseded. Raises ``LockRefused`` as the lock does."""
    with store.unit_of_work() as uow:
        quote = uow.accepts.quote(quote_id)
        assert quote is not None
        record = AcceptRecord(
            quote_id=quote_id,
            request_id=quote.request_id,
            borrower_id=quote.borrower_id,
            kind=quote.kind,
            chain_name=quote.chain_name,
            attempt=1,
            step=step,
            owner=owner,
            lease_until=at,
            updated_at=at,
        )
        uow.accepts.lock(quote, record)
        uow.commit()
    return record


def loan_row(
    borrower_id: str, status: str, principal: int, outstanding: int | None, quote_id: str | None = None
) -> LoanRow:
    """A USDC loan of ``borrower_id`` on ``CHAIN`` at ``status`` (``principal`` and ``outstanding`` in base units;
    outstanding None: recorded from the receipt, before any repayment), of ``quote_id`` when given."""
    return LoanRow(
        id=str(uuid.uuid4()),
        borrower_id=borrower_id,
        quote_id=quote_id,
        chain_name=CHAIN.name,
        chain_id=CHAIN.chain_id,
        contract=AGGREGATOR,
        status=status,
        asset="USDC",
        principal=principal,
        outstanding_principal=outstanding,
        offer_digest="0x" + uuid.uuid4().hex * 2,
        created_at=datetime.now(UTC),
    )


def loans_in_every_status(borrower_id: str, other_id: str) -> list[LoanRow]:
    """``borrower_id``'s USDC loans in every status: still owed 600 + 200 + 1,400 USDC on the active and defaulted
    ones (the 200 recorded from its receipt, before any repayment: its principal), nothing on the repaid, liquidated
    and written-off ones; and ``other_id``'s loan in default, 9,000 owed."""
    usdc = 10**6
    return [
        loan_row(borrower_id, "active", 1_000 * usdc, 600 * usdc),
        loan_row(borrower_id, "active", 200 * usdc, None),
        loan_row(borrower_id, "defaulted", 1_500 * usdc, 1_400 * usdc),
        loan_row(borrower_id, "repaid", 5_000 * usdc, 0),
        loan_row(borrower_id, "liquidated", 5_000 * usdc, 0),
        loan_row(borrower_id, "written_off", 5_000 * usdc, 0),
        loan_row(other_id, "defaulted", 9_000 * usdc, 9_000 * usdc),
    ]


def add_loans(database: Database, loans: list[LoanRow]) -> None:
    """``loans`` in the ledger, in one transaction."""
    with database.unit_of_work() as uow:
        uow.session.add_all(loans)
        uow.commit()
