"""Accepting a quote: check it, verify the borrower's EIP-712 acceptance, lock the quote, tell a traditional
lender, and relay ``openLoan`` to the quote's chain; the loan is recorded from the ``LoanOpened`` event."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from sqlalchemy import select, update

from aggregator.borrowers import BorrowerFile
from aggregator.errors import (
    ChainRejected,
    ComplianceDenied,
    InvalidAcceptance,
    LoanNotFound,
    ProviderRefused,
    QuoteExpired,
    QuoteNotAcceptable,
    QuoteNotFound,
)
from aggregator.ledger import SOURCE_RECEIPT, LedgerChain, apply_events, loan_id_for, receipt_decoder
from aggregator.offers import acceptance_document, acceptance_for, attestation_from_row
from aggregator.platform import ChainRuntime
from aggregator.quoting import NO_IDENTITY
from aggregator.sanctions_reviews import borrower_reasons, record_screening
from chain.errors import TransactionReverted
from chain.events import ChainEvent
from chain.relay import simulate
from chain.transactions import Call
from compliance import ComplianceService
from providers.base import ProviderAdapter, ProviderError
from providers.models import ProviderKind, ProviderOffer, RepaymentShape
from store.aggregator import LoanRow, QuoteRow
from store.db import Database

RELAY_TIMEOUT = 120.0  # seconds to confirmation before the accept answers with a timeout


@dataclass(frozen=True, slots=True)
class Accepted:
    loan_id: str
    quote_id: str


class AcceptanceService:
    def __init__(
        self,
        database: Database,
        chains: dict[str, ChainRuntime],
        providers: dict[str, ProviderAdapter],
        compliance: ComplianceService,
    ) -> None:
        self._db, self._chains, self._providers, self._compliance = database, chains, providers, compliance

    async def accept(self, account: BorrowerFile, quote_id: str, signature_hex: str) -> Accepted:
        quote = await asyncio.to_thread(self._load_quote, account.id, quote_id)
        signature = _signature_bytes(signature_hex)
        document = acceptance_document(quote)
        borrower = quote.offer["borrower"]
        chain = self._chains[quote.chain_name]
        is_contract_wallet = bool(await chain.w3.eth.get_code(borrower))
        if not is_contract_wallet:  # an ERC-1271 wallet's signature is checked by the contract itself
            try:
                signer = Account.recover_message(encode_typed_data(full_message=document), signature=signature)
            except ValueError as err:
                raise InvalidAcceptance(f"acceptance signature is malformed: {err}") from err
            if signer != borrower:
                raise InvalidAcceptance(f"acceptance is signed by {signer}, not by the borrower {borrower}")
        await asyncio.to_thread(self._screen, account, quote)
        await asyncio.to_thread(self._transition, quote_id, "offered", "accepting")
        try:
            call = self._open_loan_call(chain, quote, signature)
            await self._simulate(chain, call)  # nothing is promised to a lender that the chain would refuse
            if quote.kind == ProviderKind.TRADITIONAL.value:
                await self._notify_lender(quote)
            loan_id = await self._open_on_chain(chain, quote, call)
        except BaseException:
            await asyncio.to_thread(self._transition, quote_id, "accepting", "offered")
            raise
        return Accepted(loan_id=loan_id, quote_id=quote_id)

    def _screen(self, borrower: BorrowerFile, quote: QuoteRow) -> None:
        """Re-screen the borrower with today's lists, and the address the collateral comes from; record both."""
        if borrower.identity is None:
            raise ComplianceDenied("the acceptance", [NO_IDENTITY])
        records = [
            self._compliance.screen_acceptance(borrower.facts(), quote.id),
            self._compliance.screen_collateral_source(str(quote.offer["borrower"]), quote.chain_id),
        ]
        with self._db.unit_of_work() as uow:  # a name hit opens its sanctions review, as at the credit request
            version = self._compliance.screen.name_list_version
            reviews = record_screening(uow.session, records, borrower.id, version, datetime.now(UTC))
            uow.commit()
        refused = borrower_reasons([record for record in records if not record.allowed], reviews)
        if refused or not all(record.allowed for record in records):
            raise ComplianceDenied("the acceptance", refused or [("compliance.review", "held for manual review")])

    def _load_quote(self, borrower_id: str, quote_id: str) -> QuoteRow:
        with self._db.unit_of_work() as uow:
            quote = uow.session.get(QuoteRow, quote_id)
            if quote is None or quote.borrower_id != borrower_id:
                raise QuoteNotFound(quote_id)
            if quote.status != "offered":
                raise QuoteNotAcceptable(quote_id, quote.status)
            if quote.expires_at <= datetime.now(UTC):
                raise QuoteExpired(quote_id)
            return quote

    def _transition(self, quote_id: str, from_status: str, to_status: str) -> None:
        """Compare-and-set on the quote's status, so two concurrent accepts cannot both proceed."""
        with self._db.unit_of_work() as uow:
            result = uow.session.execute(
                update(QuoteRow).where(QuoteRow.id == quote_id, QuoteRow.status == from_status).values(status=to_status)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                current = uow.session.execute(select(QuoteRow.status).where(QuoteRow.id == quote_id)).scalar_one()
                raise QuoteNotAcceptable(quote_id, current)
            uow.commit()

    async def _notify_lender(self, quote: QuoteRow) -> None:
        adapter = self._providers.get(quote.provider_id)
        if adapter is None:
            raise ProviderRefused(f"provider {quote.provider_id} is no longer registered")
        offer = ProviderOffer(
            provider_id=quote.provider_id,
            kind=ProviderKind.TRADITIONAL,
            asset=quote.disclosure["asset"],
            principal=int(quote.offer["principal"]),
            rate_bps=int(quote.offer["rateBps"]),
            origination_fee=int(quote.offer["originationFee"]),
            term_days=int(quote.disclosure["termDays"]),
            repayment=RepaymentShape.SINGLE,
            expires_at=quote.expires_at,
            provider_ref=str(quote.offer["providerRef"]),
        )
        try:
            result = await adapter.accept(offer, idempotency_key=quote.id)
        except ProviderError as err:
            raise ProviderRefused(f"{quote.provider_id} did not confirm funding: {err}") from err
        if not result.funded:
            raise ProviderRefused(f"{quote.provider_id} declined to fund: {result.detail}")

    @staticmethod
    def _open_loan_call(chain: ChainRuntime, quote: QuoteRow, signature: bytes) -> Any:
        return chain.aggregator().functions.openLoan(
            acceptance_for(quote).as_abi_tuple(),
            bytes.fromhex(quote.offer_signature.removeprefix("0x")),
            signature,
            attestation_from_row(quote).as_abi_tuple(),
            bytes.fromhex(quote.attestation_signature.removeprefix("0x")),
        )

    @staticmethod
    async def _simulate(chain: ChainRuntime, call: Any) -> None:
        try:
            await simulate(call, chain.relayer)
        except TransactionReverted as err:
            raise ChainRejected(str(err)) from err

    async def _open_on_chain(self, chain: ChainRuntime, quote: QuoteRow, call: Any) -> str:
        """Relay ``openLoan`` under the intent key of the quote (a retry after a crash resumes the same intent), then
        record what its receipt shows through the ledger (the indexer applies the same facts later, once); returns
        the loan's ledger id."""
        aggregator = chain.aggregator()
        try:
            settled = await chain.transactions.submit_and_wait(
                f"open-loan:{quote.id}", Call.function(aggregator, "openLoan", *call.args), within=RELAY_TIMEOUT
            )
        except TransactionReverted as err:
            raise ChainRejected(str(err)) from err
        receipt = await chain.w3.eth.get_transaction_receipt(settled.tx_hash)  # type: ignore[arg-type]
        events = receipt_decoder(chain.record, chain.w3.codec).decode_receipt(chain.chain_id, receipt)
        ledger_chain = LedgerChain.from_record(chain.record)
        await asyncio.to_thread(self._record_loan, ledger_chain, events, quote.id)
        return loan_id_for(chain.chain_id, ledger_chain.aggregator, quote.offer_digest)

    def _record_loan(self, ledger_chain: LedgerChain, events: list[ChainEvent], quote_id: str) -> None:
        with self._db.unit_of_work() as uow:
            apply_events(uow.session, ledger_chain, events, source=SOURCE_RECEIPT, via_accept=True)
            uow.session.execute(update(QuoteRow).where(QuoteRow.id == quote_id).values(status="accepted"))
            uow.commit()

    def get_loan(self, loan_id: str, borrower_id: str | None) -> LoanRow:
        """The loan; ``borrower_id`` None means an admin or auditor, who see every loan."""
        with self._db.unit_of_work() as uow:
            loan = uow.session.get(LoanRow, loan_id)
            if loan is None or (borrower_id is not None and loan.borrower_id != borrower_id):
                raise LoanNotFound(loan_id)
            return loan


def _signature_bytes(signature_hex: str) -> bytes:
    try:
        signature = bytes.fromhex(signature_hex.removeprefix("0x"))
    except ValueError:
        raise InvalidAcceptance("signature is not hex") from None
    if len(signature) < 65:
        raise InvalidAcceptance(f"signature has {len(signature)} bytes; an EOA signature has 65")
    return signature
