"""Reading loans: the ledger's record (``aggregator.ledger``) of one loan with its entries, plus live figures read
from its chain at the time of asking (amount owed now from ``amountOwed``, the health factor from the
CollateralManager, days past due by the chain's clock from the loan's maturity, or its installment schedule when it
amortizes); and a reader's loans, newest first,
a page at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from web3.exceptions import Web3Exception

from aggregator.errors import LoanNotFound
from aggregator.installments import DueInstallment, schedule_from_disclosure
from aggregator.ledger import ACTIVE, DEFAULTED
from aggregator.platform import ChainRuntime
from aggregator.servicing.delinquency import Delinquency, amortizing_schedule, delinquency
from chain.artifacts import load_artifact
from chain.errors import ChainError
from chain.views import read_views, view
from store.aggregator import LoanRow, QuoteRow
from store.db import Database
from store.ledger import LoanEntries, LoanScope, SqlLoanQueries

log = logging.getLogger(__name__)
NO_DEBT = 2**256 - 1  # healthFactor's answer for a loan with nothing owed
WAD = Decimal(10) ** 18


@dataclass(frozen=True, slots=True)
class LiveFigures:
    """Read from the chain at ``block``: what the borrower owes now and the position's health factor (18 decimals
    on-chain; None with no debt)."""

    block: int
    principal_owed: int
    interest_owed: int
    health_factor: Decimal | None
    maturity: int = 0  # seconds, the contract's
    block_time: int = 0  # the block's timestamp: the chain's clock, which the contract judges by
    #: the loan's installments (judged by when more than one: an amortizing loan) and the principal repaid so far
    #: (the ledger's), for days past due
    schedule: tuple[DueInstallment, ...] = ()
    principal_paid: int = 0

    @property
    def total_owed(self) -> int:
        return self.principal_owed + self.interest_owed

    @property
    def delinquency(self) -> Delinquency:
        """Days past due now (since maturity while anything is owed, and for an amortizing loan since its oldest
        installment not covered by the principal repaid) and their bucket."""
        return delinquency(
            self.maturity, self.block_time, self.total_owed > 0, self.schedule, principal_paid=self.principal_paid
        )


@dataclass(frozen=True, slots=True)
class LoanDetail:
    loan: LoanRow
    entries: LoanEntries
    live: LiveFigures | None
    live_error: str | None = None
    #: the repayment schedule disclosed with the loan's quote (``aggregator.installments``); empty without a quote
    schedule: tuple[DueInstallment, ...] = ()


class LoanService:
    def __init__(self, database: Database, chains: dict[str, ChainRuntime]) -> None:
        self._db, self._chains = database, chains

    def _load(self, loan_id: str, scope: LoanScope) -> tuple[LoanRow, LoanEntries, tuple[DueInstallment, ...]]:
        with self._db.unit_of_work() as uow:
            queries = SqlLoanQueries(uow.session)
            loan = queries.get(loan_id)
            if loan is None or not scope.allows(loan):
                raise LoanNotFound(loan_id)
            quote = None if loan.quote_id is None else uow.session.get(QuoteRow, loan.quote_id)
            schedule = () if quote is None else schedule_from_disclosure(quote.disclosure)
            return loan, queries.entries(loan_id), schedule

    async def detail(self, loan_id: str, scope: LoanScope) -> LoanDetail:
        """The loan (404 outside ``scope``) with its entries and schedule; live figures while it is active or in
        default."""
        loan, entries, schedule = await asyncio.to_thread(self._load, loan_id, scope)
        if loan.status not in (ACTIVE, DEFAULTED) or loan.onchain_loan_id is None:
            return LoanDetail(loan, entries, None, schedule=schedule)
        chain = self._chains.get(loan.chain_name)
        if chain is None:
            return LoanDetail(loan, entries, None, f"chain {loan.chain_name} is not configured", schedule)
        try:
            live = await _live(chain, loan.onchain_loan_id)
            live = replace(live, schedule=schedule, principal_paid=int(loan.principal_paid or 0))
        except ChainError as err:  # the record still answers while the chain does not
            return LoanDetail(loan, entries, None, str(err), schedule)
        return LoanDetail(loan, entries, live, schedule=schedule)

    async def delinquencies(self, loans: Sequence[LoanRow]) -> dict[str, Delinquency]:
        """Days past due of the open ones among ``loans`` (a list's page), by each chain's clock: one JSON-RPC batch of
        ``getLoan`` per chain at its latest block. A chain that does not answer leaves its loans out. Amortizing loans
        are judged by their schedules too: their quotes' disclosures are read in one query for the page."""
        by_chain: dict[str, list[LoanRow]] = {}
        for loan in loans:
            if (
                loan.status in (ACTIVE, DEFAULTED)
                and loan.onchain_loan_id is not None
                and loan.chain_name in self._chains
            ):
                by_chain.setdefault(loan.chain_name, []).append(loan)
        quote_ids = [row.quote_id for rows in by_chain.values() for row in rows if row.quote_id is not None]
        disclosures = await asyncio.to_thread(self._disclosures, quote_ids) if quote_ids else {}
        found: dict[str, Delinquency] = {}
        for name, rows in by_chain.items():
            chain = self._chains[name]
            try:
                header: Any = await chain.client.rpc("eth_getBlockByNumber", "latest", False)
                block, now = int(header["number"], 16), int(header["timestamp"], 16)
                get_loan = view("CreditAggregator", "getLoan")
                aggregator = chain.record.address("CreditAggregator")
                answers = await read_views(
                    chain.client.provider, [get_loan.call(aggregator, row.onchain_loan_id, block=block) for row in rows]
                )
            except (ChainError, OSError, TimeoutError) as err:
                log.warning("days past due on %s not read: %s", name, err)
                continue
            for row, fields in zip(rows, answers, strict=True):
                # Loan: borrower, pool, asset, rateBps, maturity, lastAccrual, status, outstandingPrincipal, ...
                schedule = amortizing_schedule(disclosures.get(row.quote_id or ""))
                owed = int(fields[7]) > 0
                found[row.id] = delinquency(int(fields[4]), now, owed, schedule, int(row.principal_paid or 0))
        return found

    def _disclosures(self, quote_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        with self._db.unit_of_work() as uow:
            return SqlLoanQueries(uow.session).disclosures(quote_ids)

    def page(self, scope: LoanScope, after: tuple[datetime, str] | None, limit: int) -> list[LoanRow]:
        with self._db.unit_of_work() as uow:
            return SqlLoanQueries(uow.session).page(scope, after, limit)


async def _live(chain: ChainRuntime, loan_ref: int) -> LiveFigures:
    """``amountOwed``, ``healthFactor`` and the maturity at one pinned block, so the figures agree with each other
    and with that block's time."""
    header: Any = await chain.w3.eth.get_block("latest")
    block, block_time = int(header["number"]), int(header["timestamp"])
    manager: Any = chain.w3.eth.contract(
        address=chain.record.address("CollateralManager"), abi=load_artifact("CollateralManager").abi
    )
    try:
        principal, interest = await chain.aggregator().functions.amountOwed(loan_ref).call(block_identifier=block)
        factor = int(await manager.functions.healthFactor(loan_ref).call(block_identifier=block))
        maturity = int((await chain.aggregator().functions.getLoan(loan_ref).call(block_identifier=block))[4])
    except (Web3Exception, ValueError, OSError, TimeoutError) as err:  # a revert (a stale price), a node failing
        raise ChainError(f"{chain.name}: reading loan {loan_ref} failed: {err}") from err
    health = None if factor == NO_DEBT else Decimal(factor) / WAD
    return LiveFigures(int(block), int(principal), int(interest), health, maturity, block_time)
