"""Reading loans: the ledger's record (``aggregator.ledger``) of one loan with its entries, plus live figures read
from its chain at the time of asking (amount owed now from ``amountOwed``, the health factor from the
CollateralManager, days past due by the chain's clock from the due dates disclosed with its quote, or from its
maturity without them); and a reader's loans, newest first, a page at a time.

The records are plain values read through a small repository interface (``LoanStore``): the SQL implementation is
``store.loans``; ``InMemoryLoanStore`` is the fake for unit tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Context, Decimal
from enum import StrEnum
from typing import Any, Protocol

from eth_utils.address import to_checksum_address
from web3.exceptions import ContractLogicError, Web3Exception

from aggregator.errors import LoanNotFound, LoanRecordUnreadable
from aggregator.installments import DueInstallment, schedule_from_disclosure
from aggregator.ledger import ACTIVE, DEFAULTED
from aggregator.platform import ChainRuntime, earlier_deployment
from aggregator.servicing.delinquency import (
    Delinquency,
    Payment,
    delinquency,
    disclosed_schedule,
    judged,
    may_be_paid_as_disclosed,
)
from aggregator.servicing.payment_times import RecordedRepayment, dated
from chain.artifacts import load_artifact
from chain.errors import ChainError
from chain.revert import decode_revert
from chain.views import read_views, view

log = logging.getLogger(__name__)
NO_DEBT = 2**256 - 1  # healthFactor's answer for a loan with nothing owed
DEFAULTED_STATUS = 3  # LoanStatus.Defaulted (None, Active, Repaid, Defaulted, ...)
USD_UNIT = Decimal(10) ** 8  # the CollateralManager's prices: USD with 8 decimals
_UINT256 = Context(prec=78)  # every uint256 in full: a health factor read as a decimal is exact
WAD = Decimal(10) ** 18


#: why an unfunded loan's detail has no live figures (``LoanOut.live_error``)
UNFUNDED_LIVE = "its lender never funded it: nothing is owed or past due; it is cancelled, or settled by an admin"
#: why a loan whose funding is not confirmed yet has no live figures (``LoanOut.live_error``)
FUNDING_PENDING_LIVE = (
    "its lender has not confirmed funding it yet (the funding instruction is sent again until it is delivered): not "
    "serviced meanwhile, neither past due nor liquidated"
)


class LoanFlag(StrEnum):
    """A loan's flags, as ``LoanOut.flags`` shows them and ``GET /v1/loans?flag=`` selects by."""

    #: opened on-chain without an accept of ours (never funded by a lender through us)
    OPENED_OUTSIDE_ACCEPT = "opened_outside_accept"
    #: from an offer that is not one of our quotes
    NO_QUOTE = "no_quote"
    #: its lender refused, or reported failed, the funding (``LoanRecord.unfunded``)
    UNFUNDED = "unfunded"
    #: its lender has not answered the funding instruction yet (``LoanRecord.funding_pending``)
    FUNDING_PENDING = "funding_pending"


@dataclass(frozen=True, slots=True)
class LoanRecord:
    """One loan as the ledger records it (amounts in the asset's base units; None where no fact told it yet)."""

    id: str
    chain_name: str
    chain_id: int
    contract: str
    status: str
    asset: str
    principal: int
    offer_digest: str
    created_at: datetime
    quote_id: str | None = None
    borrower_id: str | None = None
    provider_id: str | None = None
    onchain_loan_id: int | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    block_hash: str | None = None
    borrower_address: str | None = None
    asset_address: str | None = None
    funder: str | None = None
    pool: str | None = None  # the LendingPool of a pool loan; None for a loan funded off-chain
    rate_bps: int | None = None
    term_seconds: int | None = None
    origination_fee: int | None = None
    outstanding_principal: int | None = None
    interest_paid: int | None = None
    principal_paid: int | None = None
    collateral_asset: str | None = None
    collateral_amount: int | None = None
    opened_outside_accept: bool = False
    #: funded off-chain, and its lender refused the funding instruction or reported the funding failed (its accept's
    #: ``fund-refused``): the borrower was never paid out, so it is not serviced (no days past due, no default); it
    #: ends cancelled (its collateral back with the borrower) or, once an admin settles it as funded, is serviced
    unfunded: bool = False
    #: funded off-chain, and its lender has not answered the funding instruction yet (its accept ``recorded``, the
    #: lender state neither ``funded`` nor ``fund-refused``: ``accept_saga.funding_pending``) — sent again by recovery
    #: after an outage: the borrower may not have been paid out, so it is not serviced either until it is funded (or
    #: becomes unfunded, past the funding window)
    funding_pending: bool = False

    @property
    def flags(self) -> list[LoanFlag]:
        """What a reader should know of how the loan came to be, or why it is not serviced (``LoanFlag``)."""
        flags = [LoanFlag.OPENED_OUTSIDE_ACCEPT] if self.opened_outside_accept else []
        flags += [LoanFlag.NO_QUOTE] if self.quote_id is None else []
        flags += [LoanFlag.FUNDING_PENDING] if self.funding_pending else []
        return flags + ([LoanFlag.UNFUNDED] if self.unfunded else [])

    @property
    def repaid(self) -> int:
        """All repaid so far, interest and principal (base units): what an amortizing loan's installments are
        counted as paid by (``aggregator.installments.first_unpaid``)."""
        return (self.interest_paid or 0) + (self.principal_paid or 0)


@dataclass(frozen=True, slots=True)
class ChainRef:
    """Where an entry's chain fact is: block, transaction, log."""

    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


@dataclass(frozen=True, slots=True)
class Repayment:
    payer: str
    interest_paid: int
    principal_paid: int
    outstanding_principal: int
    payment_ref: str
    where: ChainRef


@dataclass(frozen=True, slots=True)
class CollateralMovement:
    direction: str  # "added" | "removed"
    account: str
    asset: str
    amount: int
    where: ChainRef


@dataclass(frozen=True, slots=True)
class Liquidation:
    liquidator: str
    debt_repaid: int
    collateral_seized: int
    where: ChainRef


@dataclass(frozen=True, slots=True)
class LoanEntries:
    """A loan's entries in chain order."""

    repayments: list[Repayment] = field(default_factory=list)
    collateral_movements: list[CollateralMovement] = field(default_factory=list)
    liquidations: list[Liquidation] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LoanScope:
    """Whose loans a reader sees: a borrower's own, a provider's funded ones, or (both None) every loan."""

    borrower_id: str | None = None
    provider_id: str | None = None

    def allows(self, loan: LoanRecord) -> bool:
        return self.owns(loan.borrower_id, loan.provider_id)

    def owns(self, borrower_id: str | None, provider_id: str | None) -> bool:
        """Whether a loan of this borrower, funded by this provider, is in scope."""
        if self.borrower_id is not None and borrower_id != self.borrower_id:
            return False
        return self.provider_id is None or provider_id == self.provider_id


class LoanRepository(Protocol):
    """Reads of the loan ledger inside one read transaction."""

    def get(self, loan_id: str) -> LoanRecord | None: ...

    def entries(self, loan_id: str) -> LoanEntries: ...

    def disclosure(self, quote_id: str) -> dict[str, Any] | None:
        """The Truth in Lending disclosure of the loan's quote (its schedule among it); None for no such quote."""
        ...

    def disclosures(self, quote_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The disclosures of these quotes (one query for a list's page), by quote id."""
        ...

    def repayments(self, loan_ids: Sequence[str]) -> dict[str, list[RecordedRepayment]]:
        """The repayments the ledger recorded of these loans (one query for a list's page), in chain order, by loan
        id."""
        ...

    def by_provider_ref(self, provider_id: str, provider_ref: str) -> LoanRecord | None:
        """The loan opened from ``provider_id``'s offer ``provider_ref`` (its own reference, in the quote's offer);
        ``AmbiguousOfferRef`` when the lender gave that reference to offers of more than one loan."""
        ...

    def page(
        self, scope: LoanScope, after: tuple[datetime, str] | None, limit: int, flag: LoanFlag | None = None
    ) -> list[LoanRecord]:
        """Up to ``limit`` loans in ``scope`` (and flagged ``flag``), newest first (created_at, then id, descending),
        after ``after``."""
        ...


class LoanStore(Protocol):
    def reading(self) -> AbstractContextManager[LoanRepository]: ...


@dataclass(frozen=True, slots=True)
class LiveFigures:
    """Read from the chain at ``block``: what the borrower owes now and the position's health factor (18 decimals
    on-chain; None with no debt, or when the CollateralManager does not price the position now: ``health_error``
    says why)."""

    block: int
    principal_owed: int
    interest_owed: int
    health_factor: Decimal | None
    maturity: int = 0  # seconds, the contract's
    block_time: int = 0  # the block's timestamp: the chain's clock, which the contract judges by
    #: the loan's disclosed installments (one or several: judged by their due dates) and all repaid so far, interest and
    #: principal (the ledger's), for days past due
    schedule: tuple[DueInstallment, ...] = ()
    paid: int = 0
    #: the loan's repayments with their blocks' times, read when they may make it paid as disclosed (else None)
    payments: tuple[Payment, ...] | None = None
    #: why ``health_factor`` is None while something is owed: the price feeds do not price the position now
    health_error: str | None = None
    #: the loan is in default (``LoanStatus.Defaulted``): anyone may liquidate it in full, whatever its health factor
    defaulted: bool = False
    #: the operator holds its liquidation (a loan funded off-chain awaiting its funding), or the guardian paused all
    liquidation_held: bool = False
    liquidations_paused: bool = False
    #: the collateral asset's liquidation threshold (basis points), and the collateral's USD price at which the health
    #: factor falls to 1, the debt as it is (None without debt or while the position is not priced)
    liquidation_threshold_bps: int | None = None
    liquidation_price: Decimal | None = None

    @property
    def liquidatable(self) -> bool:
        """Whether ``CollateralManager.liquidate`` would take the position at ``block``: in default or below a health
        factor of 1, its liquidation neither held nor paused, and its feeds pricing it (a revert stops both)."""
        if self.liquidation_held or self.liquidations_paused or self.health_error is not None or not self.total_owed:
            return False
        return self.defaulted or (self.health_factor is not None and self.health_factor < 1)

    @property
    def total_owed(self) -> int:
        return self.principal_owed + self.interest_owed

    @property
    def delinquency(self) -> Delinquency:
        """Days past due now (since its oldest disclosed installment not covered by what was repaid, never fewer than
        since its last due date while anything is owed; since maturity without a disclosed schedule) and their
        bucket; current when paid as disclosed, as servicing judges it (``aggregator.servicing.delinquency.judged``).
        """
        return judged(
            self.maturity,
            self.block_time,
            self.total_owed > 0,
            self.schedule,
            self.paid,
            self.payments,
        )


@dataclass(frozen=True, slots=True)
class LoanDetail:
    loan: LoanRecord
    entries: LoanEntries
    live: LiveFigures | None
    live_error: str | None = None
    #: the repayment schedule disclosed with the loan's quote (``aggregator.installments``); empty without a quote
    schedule: tuple[DueInstallment, ...] = ()


LiveReader = Callable[[ChainRuntime, int], Awaitable[LiveFigures]]
"""What the borrower owes now on (chain, on-chain loan id): ``read_live`` asks the chain; unit tests pass a fake."""


@contextmanager
def in_scope(scope: LoanScope) -> Iterator[None]:
    """A loan whose record cannot be read is not found for a reader outside its scope, as any other loan: every read
    of a loan for a reader goes through it, so the 503 is answered only to a reader who would see the loan."""
    try:
        yield
    except LoanRecordUnreadable as err:
        if not scope.owns(err.borrower_id, err.provider_id):
            raise LoanNotFound(err.loan_id) from None
        raise


class LoanService:
    def __init__(self, loans: LoanStore, chains: dict[str, ChainRuntime], live: LiveReader | None = None) -> None:
        self._loans, self._chains = loans, chains
        self._live = live or read_live

    def get(self, loan_id: str, scope: LoanScope) -> LoanRecord:
        """The loan's record; LoanNotFound outside ``scope`` as for an unknown id; LoanRecordUnreadable when its
        row cannot be read (503)."""
        with self._loans.reading() as loans, in_scope(scope):
            loan = loans.get(loan_id)
        if loan is None or not scope.allows(loan):
            raise LoanNotFound(loan_id)
        return loan

    def _load(self, loan_id: str, scope: LoanScope) -> tuple[LoanRecord, LoanEntries, tuple[DueInstallment, ...]]:
        with self._loans.reading() as loans, in_scope(scope):
            loan = loans.get(loan_id)
            if loan is None or not scope.allows(loan):
                raise LoanNotFound(loan_id)
            disclosure = None if loan.quote_id is None else loans.disclosure(loan.quote_id)
            schedule = () if disclosure is None else schedule_from_disclosure(disclosure)
            return loan, loans.entries(loan_id), schedule

    async def detail(self, loan_id: str, scope: LoanScope) -> LoanDetail:
        """The loan (404 outside ``scope``) with its entries and schedule; live figures while it is active or in
        default."""
        loan, entries, schedule = await asyncio.to_thread(self._load, loan_id, scope)
        if loan.status not in (ACTIVE, DEFAULTED) or loan.onchain_loan_id is None:
            return LoanDetail(loan, entries, None, schedule=schedule)
        if loan.unfunded:  # owed on-chain, but the borrower was never paid out: nothing is due, so none is shown
            return LoanDetail(loan, entries, None, UNFUNDED_LIVE, schedule)
        if loan.funding_pending:  # the borrower may not have been paid out yet: not serviced, so not shown due
            return LoanDetail(loan, entries, None, FUNDING_PENDING_LIVE, schedule)
        chain = self._chains.get(loan.chain_name)
        if chain is None:
            return LoanDetail(loan, entries, None, f"chain {loan.chain_name} is not configured", schedule)
        earlier = earlier_deployment(chain, loan.contract)
        if earlier is not None:  # the chain's contracts are a newer deployment's: its loan of this id is another loan
            return LoanDetail(loan, entries, None, f"no live figures: {earlier}", schedule)
        try:
            live = await self._live(chain, loan.onchain_loan_id)
            live = replace(live, schedule=schedule, paid=loan.repaid)
            found = delinquency(live.maturity, live.block_time, live.total_owed > 0, schedule, paid=loan.repaid)
            if may_be_paid_as_disclosed(found, schedule, loan.repaid):
                # dated as the list and the default job date them: a lender's payment by when it said it was made
                repaid = await asyncio.to_thread(self._repayments, [loan.id])
                live = replace(live, payments=(await dated(chain.client, repaid))[loan.id])
        except ChainError as err:  # the record still answers while the chain does not
            # the node's own message names its URL (an RPC provider's key in its path): logged, never shown
            log.warning("live figures of loan %s: chain %s did not answer: %s", loan.id, loan.chain_name, err)
            return LoanDetail(loan, entries, None, f"chain {loan.chain_name} did not answer", schedule)
        return LoanDetail(loan, entries, live, schedule=schedule)

    async def delinquencies(self, loans: Sequence[LoanRecord]) -> dict[str, Delinquency]:
        """Days past due of the open ones among ``loans`` (a list's page), by each chain's clock: one JSON-RPC batch of
        ``getLoan`` per chain at its latest block. A chain that does not answer leaves its loans out. Amortizing loans
        are judged by their schedules too: their quotes' disclosures are read in one query for the page. A loan of an
        earlier deployment of a chain's contracts is left out (its id names another loan at the newest)."""
        by_chain: dict[str, list[LoanRecord]] = {}
        for loan in loans:
            if (
                loan.status in (ACTIVE, DEFAULTED)
                and not loan.unfunded
                and not loan.funding_pending
                and loan.onchain_loan_id is not None
                and loan.chain_name in self._chains
                and earlier_deployment(self._chains[loan.chain_name], loan.contract) is None
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
                # Loan: borrower, pool, asset, rateBps, maturity, lastAccrual, status, outstandingPrincipal, ...
                judging = [
                    (row, int(fields[4]), int(fields[7]) > 0, disclosed_schedule(disclosures.get(row.quote_id or "")))
                    for row, fields in zip(rows, answers, strict=True)
                ]
                candidates = [
                    row.id
                    for row, maturity, owed, schedule in judging
                    if may_be_paid_as_disclosed(
                        delinquency(maturity, now, owed, schedule, row.repaid), schedule, row.repaid
                    )
                ]
                repaid = await asyncio.to_thread(self._repayments, candidates) if candidates else {}
                payments = await dated(chain.client, repaid) if repaid else {}
            except (ChainError, OSError, TimeoutError) as err:
                log.warning("days past due on %s not read: %s", name, err)
                continue
            for row, maturity, owed, schedule in judging:
                found[row.id] = judged(maturity, now, owed, schedule, row.repaid, payments.get(row.id))
        return found

    def _repayments(self, loan_ids: Sequence[str]) -> dict[str, list[RecordedRepayment]]:
        with self._loans.reading() as loans:
            return loans.repayments(loan_ids)

    def _disclosures(self, quote_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        with self._loans.reading() as loans:
            return loans.disclosures(quote_ids)

    def page(
        self, scope: LoanScope, after: tuple[datetime, str] | None, limit: int, flag: LoanFlag | None = None
    ) -> list[LoanRecord]:
        with self._loans.reading() as loans:
            return loans.page(scope, after, limit, flag)


async def read_live(chain: ChainRuntime, loan_ref: int) -> LiveFigures:
    """``amountOwed``, the loan's maturity and status, whether its liquidation is held or paused, and
    ``healthFactor`` at one pinned block, so the figures agree with each other and with that block's time. The health
    factor is read on its own: the CollateralManager reverts it while its feeds do not price the position (a stale
    price, the sequencer down), and what is owed and past due is still shown then, the health factor None with why
    (``LiveFigures.health_error``)."""
    header: Any = await chain.w3.eth.get_block("latest")
    block, block_time = int(header["number"]), int(header["timestamp"])
    manager: Any = chain.w3.eth.contract(
        address=chain.record.address("CollateralManager"), abi=load_artifact("CollateralManager").abi
    )
    loans, positions = chain.aggregator().functions, manager.functions
    try:
        (principal, interest), loan, held, paused, (asset, _held) = await asyncio.gather(
            loans.amountOwed(loan_ref).call(block_identifier=block),
            loans.getLoan(loan_ref).call(block_identifier=block),
            positions.liquidationHeld(loan_ref).call(block_identifier=block),
            positions.liquidationsPaused().call(block_identifier=block),
            positions.collateralOf(loan_ref).call(block_identifier=block),
        )
        # Loan: borrower, pool, asset, rateBps, maturity, lastAccrual, status, ...
        maturity, defaulted = int(loan[4]), int(loan[6]) == DEFAULTED_STATUS
        # CollateralConfig: ltvBps, liquidationThresholdBps, ...; the price and the health factor revert together
        answers: tuple[Any, ...] = await asyncio.gather(
            positions.collateralConfig(asset).call(block_identifier=block),
            positions.healthFactor(loan_ref).call(block_identifier=block),
            positions.priceOf(asset).call(block_identifier=block),
            return_exceptions=True,
        )
        failed = [a for a in answers if isinstance(a, BaseException) and not isinstance(a, ContractLogicError)]
        if failed:
            raise failed[0]
    except (Web3Exception, ValueError, OSError, TimeoutError) as err:  # a node failing
        raise ChainError(f"{chain.name}: reading loan {loan_ref} failed: {err}") from err
    config, wad, price = answers
    reverted = next((a for a in answers if isinstance(a, ContractLogicError)), None)
    unpriced = None if reverted is None else unpriced_reason(reverted.data)
    return LiveFigures(
        int(block),
        int(principal),
        int(interest),
        None if unpriced else health_factor(int(wad)),
        maturity,
        block_time,
        health_error=unpriced,
        defaulted=defaulted,
        liquidation_held=bool(held),
        liquidations_paused=bool(paused),
        liquidation_threshold_bps=None if isinstance(config, BaseException) else int(config[1]),
        liquidation_price=None if unpriced else liquidation_price(int(price), int(wad)),
    )


def liquidation_price(collateral_price: int, wad: int) -> Decimal | None:
    """The collateral's USD price at which the health factor ``wad`` (18 decimals) falls to 1, the debt and its price
    as they are: the health factor is the collateral's value × threshold ÷ debt, so proportional to its price (from the
    price ``priceOf`` answers, USD with 8 decimals). A little above the exact point, never below (the health factor is
    rounded down); None without debt."""
    if wad in (0, NO_DEBT):
        return None
    return _UINT256.divide(Decimal(collateral_price) * WAD, Decimal(wad) * USD_UNIT)


def unpriced_reason(revert_data: object) -> str:
    """Why the CollateralManager does not price a position now, from its revert (``healthFactor``'s): the same
    revert stops a liquidation, so none can happen until the feeds price it again."""
    decoded = decode_revert(revert_data)
    name = decoded.name if decoded is not None else None
    if name == "StalePrice":
        feed, updated_at, _now = decoded.args  # type: ignore[union-attr]
        since = datetime.fromtimestamp(int(updated_at), UTC).isoformat().replace("+00:00", "Z")
        why = f"a price feed ({to_checksum_address(feed)}) is stale, last updated {since}"
    elif name == "SequencerDown":
        why = "the chain's sequencer is down"
    elif name == "SequencerGracePeriodNotOver":
        why = "the chain's sequencer is back up, within its grace period"
    elif name in ("InvalidPrice", "NoPriceFeed"):
        why = f"a price feed cannot be used ({decoded})"
    else:
        why = f"the CollateralManager refused to price it ({decoded or 'reverted'})"
    return f"{why}: the position is not priced now, so it cannot be liquidated until the feeds price it again"


def health_factor(wad: int) -> Decimal | None:
    """``CollateralManager.healthFactor``'s answer (18 decimals) as a number, exactly (the default context's 28
    digits would round a large one); None for a loan with nothing owed."""
    return None if wad == NO_DEBT else _UINT256.divide(Decimal(wad), WAD)


# ---------------------------------------------------------------------------------------------- in-memory fake


class InMemoryLoanRepository:
    def __init__(
        self,
        loans: dict[str, LoanRecord],
        entries: dict[str, LoanEntries],
        disclosures: dict[str, dict[str, Any]],
        provider_refs: dict[tuple[str, str], str] | None = None,
    ) -> None:
        self.loans, self._entries, self._disclosures = loans, entries, disclosures
        self._provider_refs = provider_refs or {}

    def by_provider_ref(self, provider_id: str, provider_ref: str) -> LoanRecord | None:
        loan_id = self._provider_refs.get((provider_id, provider_ref))
        return None if loan_id is None else self.loans.get(loan_id)

    def disclosure(self, quote_id: str) -> dict[str, Any] | None:
        return self._disclosures.get(quote_id)

    def disclosures(self, quote_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {quote_id: self._disclosures[quote_id] for quote_id in quote_ids if quote_id in self._disclosures}

    def get(self, loan_id: str) -> LoanRecord | None:
        return self.loans.get(loan_id)

    def entries(self, loan_id: str) -> LoanEntries:
        return self._entries.get(loan_id, LoanEntries())

    def repayments(self, loan_ids: Sequence[str]) -> dict[str, list[RecordedRepayment]]:
        return {
            loan_id: [
                RecordedRepayment(r.where.block_hash, r.interest_paid + r.principal_paid)
                for r in self.entries(loan_id).repayments
            ]
            for loan_id in loan_ids
        }

    def page(
        self, scope: LoanScope, after: tuple[datetime, str] | None, limit: int, flag: LoanFlag | None = None
    ) -> list[LoanRecord]:
        newest_first = sorted(self.loans.values(), key=lambda loan: (loan.created_at, loan.id), reverse=True)
        seen = [loan for loan in newest_first if scope.allows(loan) and (flag is None or flag in loan.flags)]
        if after is not None:
            seen = [loan for loan in seen if (loan.created_at, loan.id) < after]
        return seen[:limit]


class InMemoryLoanStore:
    """The fake for unit tests: loans and their entries in dictionaries."""

    def __init__(self) -> None:
        self.loans: dict[str, LoanRecord] = {}
        self.entries: dict[str, LoanEntries] = {}
        self.disclosures: dict[str, dict[str, Any]] = {}  # by quote id
        self.provider_refs: dict[tuple[str, str], str] = {}  # (provider, its offer's reference) → loan id

    @contextmanager
    def reading(self) -> Iterator[InMemoryLoanRepository]:
        yield InMemoryLoanRepository(self.loans, self.entries, self.disclosures, self.provider_refs)
