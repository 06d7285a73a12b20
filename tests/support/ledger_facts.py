"""Synthetic chain facts of one loan for the ledger and the outbox (no chain needed): events as the indexer
decodes them, each in its own block, and the records that make a loan ours (borrower, request, quote)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aggregator.ledger import LedgerChain, loan_id_for
from chain.events import ChainEvent
from store.aggregator import CreditRequestRow, QuoteRow, provider_ref_of
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
    with database.unit_of_work() as uow:
        if borrower_id is None:
            borrower_id = str(uuid.uuid4())
            uow.session.add(
                BorrowerRow(id=borrower_id, wallet_address=borrower_address, jurisdiction="US-NY", created_at=now)
            )
            uow.session.flush()
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
