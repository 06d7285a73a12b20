"""Loans for reconciliation tests: opened on a devnet through the relayer (the contract harness), with the records
our platform would hold for them — borrower, credit request, quote (its offer digest) and accept — and the ledger
built by the indexer's own path (``EventReader`` with ``store.loan_ledger.apply_batch``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD

from aggregator.indexer import index_to_head
from aggregator.ledger import loan_id_for
from api.reconcile_jobs import ReconciledChain, reconcile
from chain.client import ChainClient
from compliance.reconcile import ChainResult
from contracts.typed_data import Domain, digest, offer_typed_data
from store.accept_rows import AcceptRow
from store.aggregator import CreditRequestRow, QuoteRow, provider_ref_of
from store.api import BorrowerRow
from store.db import Database
from tests.contracts.harness import BORROWERS, RELAYER, USDC, WETH, Harness
from tests.support.devnet import DeployedChain

NOW = datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class OpenedLoan:
    chain: str
    onchain_id: int
    loan_id: str  # the ledger's id
    offer_digest: str
    tx_hash: str


class LoanMaker:
    """Opens small pool loans on one devnet; ``ours=True`` also writes the quote and accept records first."""

    def __init__(self, chain: DeployedChain, database: Database) -> None:
        self.chain, self.database = chain, database
        self.h = Harness(chain)
        self._borrowers: dict[str, str] = {}
        self._approved: set[str] = set()

    def _borrower_id(self, session: Any, account: LocalAccount) -> str:
        if account.address not in self._borrowers:
            found = session.query(BorrowerRow).filter_by(wallet_address=account.address).one_or_none()
            if found is None:
                found = BorrowerRow(
                    id=str(uuid.uuid4()), wallet_address=account.address, jurisdiction="US-NY", created_at=NOW
                )
                session.add(found)
            self._borrowers[account.address] = found.id
        return self._borrowers[account.address]

    def open(
        self,
        n: int,
        *,
        ours: bool = True,
        principal: int = 10 * USDC,
        lender: tuple[str, str] | None = None,
        disclosure: dict[str, Any] | None = None,
        **terms: Any,
    ) -> OpenedLoan:
        """A pool loan, or with ``lender`` (provider id, its offer reference) a traditional one of that lender; our
        quote of it stores ``disclosure`` (default: none); ``terms`` change the offer's (``rateBps``, ``term``,
        ``collateralAmount``)."""
        borrower = BORROWERS[n % len(BORROWERS)]
        if borrower.address not in self._approved:  # once per borrower, when first used
            self.h.approve_all(borrower.address)
            self._approved.add(borrower.address)
        offer = self.h.offer(
            borrower.address,
            pool=lender is None,
            **({"principal": principal, "originationFee": 0, "collateralAmount": WETH // 100} | terms),
        )
        domain = Domain(self.chain.chain_id, self.h.aggregator.address)
        offer_digest = "0x" + digest(offer_typed_data(domain, offer)).hex()
        if ours:
            self._quote(borrower, offer_digest, offer.principal, lender, disclosure or {})
        receipt = self.h.send(self.h.aggregator.functions.openLoan(*self.h.open_args(offer, borrower.key)), RELAYER)
        (event,) = self.h.aggregator.events.LoanOpened().process_receipt(receipt, errors=DISCARD)
        loan_id = loan_id_for(self.chain.chain_id, self.h.aggregator.address, offer_digest)
        return OpenedLoan(
            self.chain.name, int(event["args"]["loanId"]), loan_id, offer_digest, receipt["transactionHash"].to_0x_hex()
        )

    def _quote(
        self,
        borrower: LocalAccount,
        offer_digest: str,
        principal: int,
        lender: tuple[str, str] | None,
        disclosure: dict[str, Any],
    ) -> None:
        provider_id, offer = ("pool:usdc", {}) if lender is None else (lender[0], {"providerRef": lender[1]})
        kind = "pool" if lender is None else "traditional"
        with self.database.unit_of_work() as uow:
            session = uow.session
            borrower_id = self._borrower_id(session, borrower)
            session.flush()
            request_id, quote_id = str(uuid.uuid4()), str(uuid.uuid4())
            session.add(
                CreditRequestRow(
                    id=request_id,
                    borrower_id=borrower_id,
                    asset="USDC",
                    amount=str(principal),
                    term_days=30,
                    purpose="test",
                    collateral_asset="WETH",
                    collateral_amount="0.01",
                    preferred_chains=[self.chain.name],
                    status="accepted",
                    risk={},
                    created_at=NOW,
                )
            )
            session.flush()
            session.add(
                QuoteRow(
                    id=quote_id,
                    request_id=request_id,
                    borrower_id=borrower_id,
                    provider_id=provider_id,
                    kind=kind,
                    chain_name=self.chain.name,
                    chain_id=self.chain.chain_id,
                    contract=self.h.aggregator.address,
                    rank=1,
                    offer=offer,
                    provider_ref=provider_ref_of(offer),
                    offer_digest=offer_digest,
                    offer_signature="0x",
                    attestation={},
                    attestation_signature="0x",
                    disclosure=disclosure,
                    status="accepted",
                    expires_at=NOW + timedelta(hours=1),
                    created_at=NOW,
                )
            )
            loan_id = loan_id_for(self.chain.chain_id, self.h.aggregator.address, offer_digest)
            session.add(
                AcceptRow(
                    quote_id=quote_id,
                    request_id=request_id,
                    borrower_id=borrower_id,
                    kind=kind,
                    chain_name=self.chain.name,
                    attempt=1,
                    step="recorded",
                    owner="test",
                    lease_until=NOW,
                    updated_at=NOW,
                    loan_id=loan_id,
                )
            )
            uow.commit()

    def repay(self, loan: OpenedLoan, amount: int) -> str:
        borrower = next(b for b in BORROWERS if b.address == self.h.loan(loan.onchain_id)["borrower"])
        receipt = self.h.send(self.h.aggregator.functions.repay(loan.onchain_id, amount), borrower)
        return str(receipt["transactionHash"].to_0x_hex())

    def head(self) -> int:
        return int(self.chain.w3.eth.block_number)


async def index(chain: DeployedChain, database: Database, from_block: int) -> None:
    """The ledger of ``chain`` from ``from_block`` to the head, by the indexer's own path."""
    await index_to_head(chain.config, chain.record, database, from_block, reader=f"test-{uuid.uuid4().hex[:6]}")


async def reconciled(chain: DeployedChain, database: Database, from_block: int) -> ChainResult:
    """One reconciliation run of ``chain`` from ``from_block`` to its head, as ``creditmesh reconcile`` runs it."""
    client = await ChainClient(chain.config).connect()
    try:
        outcome = await reconcile(database, [ReconciledChain(client, chain.record)], "test", from_block=from_block)
    finally:
        await client.close()
    return outcome.results[0]
