"""The liquidation keeper: one per chain across processes (lease kind ``keeper``), run in the API process when
``CREDITMESH_WORKERS`` names it and by ``creditmesh keeper``.

Every round it reads, at one pinned block and in a few JSON-RPC batches (``chain.views``), what the
CollateralManager would read: each open loan's debt and collateral, the assets' risk parameters, the liquidation
thresholds and pause flag, the price feeds with their staleness and sequencer checks (``prices``). It then applies
the contract's rules in Python (``health``) and, for each loan in default or below a health factor of 1:

* liquidates it from the keeper account (``CREDITMESH_KEEPER_KEY``; the account holds the debt asset and has
  approved the CollateralManager), repaying up to the close factor's maximum — only after an ``eth_call``
  simulation from the keeper says the call succeeds, only while it still holds the lease, and never while its last
  liquidation of the loan is in flight: a loan's liquidations are numbered (the intent
  ``liquidate:<chain id>:<CollateralManager>:<loan id>:n<number>``), the next number taken only once the last one
  settled, so two keepers (a stalled one and its successor) send at most one of them, and a loan still unhealthy
  after one liquidation is liquidated again;
* or, when it cannot liquidate now (liquidations paused, a price it may not use, a rule of the contract, the
  keeper's own balance), says why in the log and — for a pool loan — impairs it (``impair``), so that the pool
  counts the expected loss at once; it sends ``impair`` only when the pool's recorded impairment is off by more than
  1% of the debt.

A round sends its liquidations first (within what the keeper holds of each debt asset, counting what the round
spent already) and then waits for their receipts together, each for at most ``receipt_timeout``; a receipt is
applied to the ledger at once (the indexer applies the same confirmed events later, idempotently); bad debt written
off (``BadDebtRecorded``, ``LoanWrittenOff``) is logged with its amount and kept as chain facts, and the loan becomes
``written_off``. A loan funded off-chain is liquidated the same way: the contract
pays its provider's settlement address (``liquidationPayee``); without one the simulation refuses and it is logged.
One whose lender never funded it (unfunded) or has not confirmed funding it yet (its funding pending) is skipped:
its collateral would pay a lender that may never have paid the borrower out (``repository.left_alone``).

Each round also sweeps collateral left claimable: a close the platform did not send (the borrower's own ``close`` or
``repay`` on-chain, a liquidation's remainder) whose push the collateral token refused leaves a ``CollateralClaimable``
fact and nothing else claims it. For each such fact with no ``CollateralRemoved`` of the loan after it, the keeper
simulates ``claimCollateral`` from its own account and, when it passes, sends it under the intent
``claimCollateral:<chain id>:<CollateralManager>:<loan id>`` — once per attempt across keepers and restarts (a resumed
intent is waited on, never sent again); the receipt's ``CollateralRemoved`` is applied to the ledger at once, which
ends the sweep for that loan. A claim the token still refuses is left for a later round; one that reverted when
mined (the token refused again between the simulation and the block) or was refused stays so under its key, and a
later round, once its simulation passes again, sends the next attempt (``…:<loan id>:2`` and on, as the relayer's
claims in ``aggregator.repaying``), at most ``MAX_CLAIM_ATTEMPTS`` (those the node refused for the keeper's funds not
counted). A loan the relayer is claiming already (after a close it relayed, ``aggregator.repaying.claim_collateral``:
any of its attempts in flight) is left to it.

While the keeper's account cannot pay for gas (the node refuses its sends for their funds), a loan's next liquidation,
impairment or claim is deferred as the default job's are (``sender_funds``: the pause doubling per refusal up to
``KeeperSettings.most_pause``, none more in a round once one was refused, funds put back used by the next round), and
it is said once: an error naming the account and chain, a gauge, a counter and the admins' ``/health``. Before (fixed
2026-11-29) every round left one more failed liquidation per loan, and five rounds ended a loan's collateral sweep.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from eth_utils.address import to_checksum_address

from aggregator.indexer import default_holder
from aggregator.ledger import LedgerChain
from aggregator.receipts import apply_receipt
from aggregator.repaying import CLAIM_FAILED, MAX_CLAIM_ATTEMPTS
from aggregator.repaying import claim_intent_key as relayed_claim_key
from aggregator.servicing.health import (
    BPS,
    Liquidation,
    LiquidationRefused,
    Position,
    Refusal,
    Thresholds,
    assess,
    expected_loss,
    largest_repay_leaving_no_dust,
    liquidatable,
    liquidation,
    repay_to_send,
)
from aggregator.servicing.leased import Leader, run_leased
from aggregator.servicing.prices import Price, PriceBoard, PriceRefusal, read_prices
from aggregator.servicing.repository import OpenLoan, ServicingStore, UnclaimedCollateral, left_alone, serviced
from aggregator.servicing.sender_funds import SenderFunds, refused_for_funds
from chain.artifacts import load_artifact
from chain.client import ChainClient
from chain.deployment import DeploymentRecord
from chain.errors import ChainError, GasEstimationFailed, TransactionReverted
from chain.relay import revert_of
from chain.signers import Role
from chain.transactions import Call, TransactionManager
from chain.views import read_views, view
from store.chain import TERMINAL_STATUSES, IntentRecord
from store.db import Database
from store.leases import LeaseStore
from store.servicing import SqlServicingStore

log = logging.getLogger(__name__)

LEASE_KIND = "keeper"
IMPAIR_TOLERANCE_BPS = 100  # re-impair when the pool's figure is off by more than 1% of the debt
DEFAULTED = 3  # LoanStatus.Defaulted in the contracts' enum (None, Active, Repaid, Defaulted, Liquidated)


@dataclass(frozen=True, slots=True)
class KeeperSettings:
    ttl: timedelta = timedelta(seconds=15)
    interval: float = 5.0  # seconds between rounds
    margin_bps: int = 10  # over the close factor's cap, for interest accrued before mining (the contract caps it)
    receipt_timeout: float = 60.0
    #: the pause after an attempt refused for the keeper's account's funds, doubling per refusal up to the most
    first_pause: float = 60.0
    most_pause: float = 3_600.0


@dataclass(frozen=True, slots=True)
class Sent:
    loan_ref: int
    action: str  # "liquidate" | "impair"
    tx_hash: str
    outcome: Liquidation | None = None  # predicted by the contract's rules at the block read


@dataclass
class RoundReport:
    """One round: the block read, what was sent, and why each unhealthy loan was left alone."""

    block: int
    timestamp: int
    paused: bool
    health: dict[int, int] = field(default_factory=dict)  # loan ref → health factor (18 decimals)
    sent: list[Sent] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    claimed: dict[int, str] = field(default_factory=dict)  # loan ref → claimCollateral tx hash
    unclaimed: dict[int, str] = field(default_factory=dict)  # loan ref → why its collateral was not claimed now


def claim_intent_key(chain_id: int, collateral_manager: str, loan_ref: int, attempt: int = 1) -> str:
    """A keeper ``claimCollateral`` of a loan, one per attempt: the key a second keeper (or a restart) finds taken.
    The first attempt's key has no number (as before attempts were counted). A loan is named by its
    CollateralManager (the intent's ``to``, checksummed) and its id: a later deployment's loan of the same id is
    another loan."""
    manager = to_checksum_address(collateral_manager)
    return f"claimCollateral:{chain_id}:{manager}:{loan_ref}" + ("" if attempt == 1 else f":{attempt}")


def liquidation_intent_key(chain_id: int, collateral_manager: str, loan_ref: int, number: int) -> str:
    """The keeper's ``number``-th liquidation of a loan (1, 2, …): the next number is taken only once the last one
    settled, so a loan has at most one liquidation in flight across keepers, however late one of them sends."""
    return f"{liquidation_intent_prefix(chain_id, collateral_manager)}{loan_ref}:n{number}"


def liquidation_intent_prefix(chain_id: int, collateral_manager: str) -> str:
    """What every liquidation key of the CollateralManager's loans starts with."""
    return f"liquidate:{chain_id}:{to_checksum_address(collateral_manager)}:"


@dataclass(frozen=True, slots=True)
class _Submitted:
    """A liquidation a round sent, its receipt not waited for yet."""

    loan_ref: int
    key: str
    outcome: Liquidation


@dataclass
class _Sends:
    """What a round sent so far: its liquidations, and what they spend of the keeper's debt assets."""

    liquidations: list[_Submitted] = field(default_factory=list)
    spent: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class _Chain:
    """The contracts and accounts one keeper uses."""

    aggregator: str
    manager: str
    keeper: str


@dataclass(frozen=True, slots=True)
class _Read:
    """One round's reads at a pinned block."""

    paused: bool
    thresholds: Thresholds
    debts: dict[int, tuple[str, int, int, int]]  # loan ref → (asset, principal, interest, status)
    collateral: dict[int, tuple[str, int]]  # loan ref → (asset, amount)
    configs: dict[str, tuple[int, int]]  # collateral asset → (liquidation threshold bps, bonus bps)
    impairments: dict[int, int]  # pool loans: loan ref → the pool's recorded impairment
    balances: dict[str, tuple[int, int]]  # debt asset → (keeper balance, allowance to the manager)
    prices: PriceBoard
    #: loan ref → the key of its liquidation sent in an earlier round and not yet settled (not confirmed in time)
    in_flight: dict[int, str] = field(default_factory=dict)


class Keeper:
    def __init__(
        self,
        client: ChainClient,
        record: DeploymentRecord,
        database: Database,
        transactions: TransactionManager,
        *,
        store: ServicingStore | None = None,
        leases: LeaseStore | None = None,
        holder: str | None = None,
        settings: KeeperSettings = KeeperSettings(),
    ) -> None:
        self.client, self.record, self.database = client, record, database
        self.store: ServicingStore = store or SqlServicingStore(database)
        self.transactions = transactions
        self.leases: LeaseStore = leases or self.store.leases
        self.holder = holder or default_holder()
        self.settings = settings
        self.ledger_chain = LedgerChain.from_record(record)
        self.chain = _Chain(
            record.address("CreditAggregator"), record.address("CollateralManager"), transactions.signer.address
        )
        self._manager_abi: Any = self.client.w3.eth.contract(
            address=to_checksum_address(self.chain.manager), abi=load_artifact("CollateralManager").abi
        )
        self._aggregator_abi: Any = self.client.w3.eth.contract(
            address=to_checksum_address(self.chain.aggregator), abi=load_artifact("CreditAggregator").abi
        )
        self._claim_refusals: dict[int, str] = {}  # loan ref → why its claim was last refused (logged once)
        self.funds = SenderFunds(
            client, transactions, settings.first_pause, settings.most_pause, role=Role.KEEPER, job="keeper",
            sends="liquidations, impairments and collateral claims",
        )  # fmt: skip

    @property
    def chain_id(self) -> int:
        return self.ledger_chain.chain_id

    async def run(self, stop: asyncio.Event) -> None:
        """Keep every open loan of this chain healthy while holding the chain's keeper lease, until ``stop``."""
        await run_leased(
            LEASE_KIND,
            self.chain_id,
            self.leases,
            self.holder,
            self.settings.ttl,
            self.settings.interval,
            self.run_round,
            stop,
        )

    async def run_round(self, leader: Leader | None = None) -> RoundReport:
        """Read, assess and act once. ``leader``: the held lease, fenced before each transaction (None: tests and
        one-off runs that hold no lease)."""
        self.funds.new_round()
        loans, unserviced = serviced(await asyncio.to_thread(self._open_loans))
        block = await self.client.rpc("eth_getBlockByNumber", "latest", False)
        number, timestamp = int(block["number"], 16), int(block["timestamp"], 16)
        read = replace(await self._read(loans, number, timestamp), in_flight=await self._liquidations_in_flight())
        report, sends = RoundReport(number, timestamp, read.paused), _Sends()
        for loan in unserviced:  # unfunded, or its funding pending: its collateral is not the lender's to take
            self._skip(report, loan.loan_ref, str(left_alone(loan)))
        for loan in loans:
            try:
                await self._service(loan, read, report, leader, sends)
            except ChainError as err:  # refused by the node, not confirmed in time: the other loans go on
                self.funds.saw(err)
                self._skip(report, loan.loan_ref, f"its transaction did not complete: {err}")
        await self._confirm_liquidations(sends.liquidations, report)
        for claimable in await asyncio.to_thread(self._unclaimed):
            await self._claim(claimable, report, leader)
        await self.funds.end_round()
        return report

    async def _liquidations_in_flight(self) -> dict[int, str]:
        """The keeper's liquidations still open (sent, not settled): a loan whose liquidation was not confirmed in time
        reads as liquidatable again while it waits, and a second liquidation would queue behind the first and revert,
        or take more than the first left due. (Read once per round; ``_liquidation_key`` checks again before a send.)
        Keys of either form: ``<loan>:n<number>``, and ``<loan>:<block>`` of the keepers before liquidations were
        numbered."""
        prefix = liquidation_intent_prefix(self.chain_id, self.chain.manager)
        intents = await self.transactions.store.open_intents(self.chain_id, self.transactions.account.address)
        return {int(i.key.removeprefix(prefix).split(":")[0]): i.key for i in intents if i.key.startswith(prefix)}

    def _open_loans(self) -> list[OpenLoan]:
        with self.store.unit_of_work() as uow:
            return uow.servicing.open_loans(self.chain_id, self.ledger_chain.aggregator)

    def _unclaimed(self) -> list[UnclaimedCollateral]:
        with self.store.unit_of_work() as uow:
            return uow.servicing.unclaimed_collateral(self.chain_id, self.chain.manager)

    async def _read(self, loans: Sequence[OpenLoan], block: int, timestamp: int) -> _Read:
        provider = self.client.provider
        manager, aggregator = self.chain.manager, self.chain.aggregator
        collateral_assets = sorted({(loan.collateral_asset or "").lower() for loan in loans} - {""})
        debt_assets = sorted({(loan.asset_address or "").lower() for loan in loans} - {""})
        pool_loans = [loan for loan in loans if loan.pool]
        calls = [
            view("CollateralManager", "liquidationsPaused").call(manager, block=block),
            view("CollateralManager", "fullCloseValue").call(manager, block=block),
            view("CollateralManager", "minLeftoverValue").call(manager, block=block),
        ]
        calls += [view("CreditAggregator", "debtOf").call(aggregator, loan.loan_ref, block=block) for loan in loans]
        calls += [view("CollateralManager", "collateralOf").call(manager, loan.loan_ref, block=block) for loan in loans]
        calls += [
            view("CollateralManager", "collateralConfig").call(manager, to_checksum_address(asset), block=block)
            for asset in collateral_assets
        ]
        calls += [
            view("LendingPool", "impairmentOf").call(to_checksum_address(str(loan.pool)), loan.loan_ref, block=block)
            for loan in pool_loans
        ]
        for asset in debt_assets:
            token = to_checksum_address(asset)
            calls.append(view("MockERC20", "balanceOf").call(token, self.chain.keeper, block=block))
            calls.append(view("MockERC20", "allowance").call(token, self.chain.keeper, manager, block=block))
        answers = iter(await read_views(provider, calls))
        paused, full_close, min_leftover = bool(next(answers)), int(next(answers)), int(next(answers))
        debts = {}
        for loan in loans:
            _, asset, principal, interest, status, _ = next(answers)
            debts[loan.loan_ref] = (str(asset).lower(), int(principal), int(interest), int(status))
        collateral = {}
        for loan in loans:
            asset, amount = next(answers)
            collateral[loan.loan_ref] = (str(asset).lower(), int(amount))
        configs = {}
        for asset in collateral_assets:
            _ltv, threshold, bonus, *_ = next(answers)
            configs[asset] = (int(threshold), int(bonus))
        impairments = {loan.loan_ref: int(next(answers)) for loan in pool_loans}
        balances = {asset: (int(next(answers)), int(next(answers))) for asset in debt_assets}
        prices = await read_prices(provider, manager, [*collateral_assets, *debt_assets], block, timestamp)
        return _Read(
            paused, Thresholds(full_close, min_leftover), debts, collateral, configs, impairments, balances, prices
        )

    def _position(self, loan: OpenLoan, read: _Read) -> Position | str:
        debt_asset, principal, interest, status = read.debts[loan.loan_ref]
        collateral_asset, amount = read.collateral[loan.loan_ref]
        debt_price, collateral_price = read.prices.get(debt_asset), read.prices.get(collateral_asset)
        for price in (debt_price, collateral_price):
            if isinstance(price, PriceRefusal):
                return f"no usable {price.asset} price: {price.reason}"
        assert isinstance(debt_price, Price)
        assert isinstance(collateral_price, Price)
        threshold, bonus = read.configs.get(collateral_asset, (0, 0))
        return Position(
            debt=principal + interest,
            defaulted=status == DEFAULTED,
            debt_price=debt_price.usd,
            debt_unit=debt_price.unit,
            collateral=amount,
            collateral_price=collateral_price.usd,
            collateral_unit=collateral_price.unit,
            threshold_bps=threshold,
            bonus_bps=bonus,
        )

    async def _service(
        self, loan: OpenLoan, read: _Read, report: RoundReport, leader: Leader | None, sends: _Sends
    ) -> None:
        ref = loan.loan_ref
        position = self._position(loan, read)
        if isinstance(position, str):
            self._skip(report, ref, position)
            return
        assessment = assess(position, read.thresholds)
        report.health[ref] = assessment.health_factor
        if not liquidatable(position, assessment):
            return
        reason = await self._try_liquidate(loan, position, read, leader, sends)
        if reason is None:
            return
        self._skip(report, ref, reason)
        if loan.pool:
            await self._impair_if_off(loan, position, read, report, leader)

    async def _try_liquidate(
        self, loan: OpenLoan, position: Position, read: _Read, leader: Leader | None, sends: _Sends
    ) -> str | None:
        """Send the liquidation of ``loan`` now (its receipt is waited for with the round's others); None when sent,
        else why not."""
        if read.paused:
            return "liquidations are paused (pauseLiquidations)"
        if loan.loan_ref in read.in_flight:
            return f"its liquidation {read.in_flight[loan.loan_ref]} is not settled yet"
        repay = repay_to_send(position, read.thresholds, self.settings.margin_bps)
        try:
            outcome = liquidation(position, read.thresholds, repay)
        except LiquidationRefused as err:
            smaller = largest_repay_leaving_no_dust(position, read.thresholds) if err.refusal is Refusal.DUST else None
            if smaller is None:
                return f"the contract's rules refuse it: {err}"
            repay, outcome = smaller, liquidation(position, read.thresholds, smaller)  # the most it takes, no dust
        debt_asset = read.debts[loan.loan_ref][0]
        balance, allowance = read.balances.get(debt_asset, (0, 0))
        balance, allowance = balance - sends.spent[debt_asset], allowance - sends.spent[debt_asset]  # this round's
        if min(balance, allowance) < repay:
            return (
                f"the keeper {self.chain.keeper} holds {balance} and allows {allowance} of {debt_asset}, needs {repay}"
            )
        call = Call.function(self._manager_abi, "liquidate", loan.loan_ref, repay)
        refused = await self._simulate(call)
        if refused is not None:
            return f"simulation reverts: {refused}"
        key, in_flight, earlier = await self._liquidation_key(loan.loan_ref)
        if in_flight is not None:  # sent since this round read the keeper's open intents (by another keeper)
            return f"its liquidation {in_flight} is not settled yet"
        deferred = await self.funds.deferral("liquidate", earlier)
        if deferred is not None:  # the keeper's account cannot pay for gas now (``sender_funds``)
            return deferred
        if leader is not None:
            await leader.fence()
        try:
            await self.transactions.submit(key, call)
        except GasEstimationFailed as err:
            raise ChainError(f"{key}: {err}") from err
        sends.liquidations.append(_Submitted(loan.loan_ref, key, outcome))
        sends.spent[debt_asset] += repay
        return None

    async def _confirm_liquidations(self, submitted: Sequence[_Submitted], report: RoundReport) -> None:
        """Wait for the round's liquidations together (each for at most ``receipt_timeout``), and apply each receipt
        to the ledger."""
        confirmed = await asyncio.gather(*(self._confirm(sent.key) for sent in submitted), return_exceptions=True)
        for sent, tx_hash in zip(submitted, confirmed, strict=True):
            if isinstance(tx_hash, ChainError):  # reverted when mined, not confirmed in time: said, resumed later
                self._skip(report, sent.loan_ref, f"its transaction did not complete: {tx_hash}")
                continue
            if isinstance(tx_hash, BaseException):
                raise tx_hash
            outcome = sent.outcome
            report.sent.append(Sent(sent.loan_ref, "liquidate", tx_hash, outcome))
            log.info(
                "keeper on chain %s: liquidated loan %s in %s: repaid %s, seized %s%s",
                self.chain_id,
                sent.loan_ref,
                tx_hash,
                outcome.debt_repaid,
                outcome.collateral_seized,
                f", bad debt written off {outcome.bad_debt}" if outcome.bad_debt else "",
            )
            if outcome.bad_debt:
                log.warning(
                    "keeper on chain %s: loan %s ran out of collateral; %s of debt written off",
                    self.chain_id,
                    sent.loan_ref,
                    outcome.bad_debt,
                )

    async def _liquidation_key(self, ref: int) -> tuple[str, str | None, tuple[IntentRecord, ...]]:
        """The key of the loan's next liquidation, the key of its last one when that is still in flight (then none
        may be sent), and the liquidations settled before it, in order (what a round backs off by while the keeper's
        account cannot pay: ``sender_funds``). Two keepers that decide at once take the same key: the intent is
        created once, and the other's call resumes it (or conflicts with it), never a second liquidation. Every
        numbered liquidation stored is read (a missing number is no end: 0037 rekeyed each by the CollateralManager it
        was sent to)."""
        stem = f"{liquidation_intent_prefix(self.chain_id, self.chain.manager)}{ref}:n"
        stored = await self.transactions.store.numbered_intents(stem)
        for _, existing in stored:
            if existing.status not in TERMINAL_STATUSES:
                return existing.key, existing.key, ()
        number = stored[-1][0] + 1 if stored else 1
        return liquidation_intent_key(self.chain_id, self.chain.manager, ref, number), None, tuple(i for _, i in stored)

    async def _impair_if_off(
        self, loan: OpenLoan, position: Position, read: _Read, report: RoundReport, leader: Leader | None
    ) -> None:
        expected = expected_loss(position)
        recorded = read.impairments.get(loan.loan_ref, 0)
        if abs(expected - recorded) * BPS <= position.debt * IMPAIR_TOLERANCE_BPS:
            return
        call = Call.function(self._aggregator_abi, "impair", loan.loan_ref)
        refused = await self._simulate(call)
        if refused is not None:
            log.warning("keeper on chain %s: cannot impair loan %s: %s", self.chain_id, loan.loan_ref, refused)
            return
        deferred = await self.funds.deferral("impair", ())  # keyed by the block read: no earlier attempts to count
        if deferred is not None:
            report.skipped[loan.loan_ref] += f"; {deferred}"
            return
        if leader is not None:
            await leader.fence()
        tx_hash = await self._send(f"impair:{self.chain_id}:{loan.loan_ref}:{read.prices.block}", call)
        report.sent.append(Sent(loan.loan_ref, "impair", tx_hash))
        log.info(
            "keeper on chain %s: impaired loan %s (expected loss %s, was %s) in %s",
            self.chain_id,
            loan.loan_ref,
            expected,
            recorded,
            tx_hash,
        )

    async def _claim(self, claimable: UnclaimedCollateral, report: RoundReport, leader: Leader | None) -> None:
        """Send ``claimCollateral`` for a closed loan whose collateral the token refused to push: one attempt at a
        time, each under its own intent, the next only after the last failed and once a simulation passes."""
        ref = claimable.loan_ref
        call = Call.function(self._manager_abi, "claimCollateral", ref)
        key, existing, earlier = await self._claim_attempt(ref)
        if key is None:
            report.unclaimed[ref] = f"{MAX_CLAIM_ATTEMPTS} claims failed: not sent again"
            if self._claim_refusals.get(ref) != report.unclaimed[ref]:  # said once, not every round
                self._claim_refusals[ref] = report.unclaimed[ref]
                log.error("keeper on chain %s: collateral of loan %s: %s", self.chain_id, ref, report.unclaimed[ref])
            return
        if existing is None:  # simulate before an attempt's first send only: a resumed intent is already decided
            relayed = await self._relayed_claim_in_flight(ref)
            if relayed is not None:
                report.unclaimed[ref] = f"the relayer's claim {relayed} is in flight"
                return
            refused = await self._simulate(call)
            if refused is not None:
                report.unclaimed[ref] = f"claimCollateral would revert: {refused}"
                if self._claim_refusals.get(ref) != refused:  # said once per reason, not every round
                    self._claim_refusals[ref] = refused
                    log.info(
                        "keeper on chain %s: collateral of loan %s not claimable now: %s", self.chain_id, ref, refused
                    )
                return
            deferred = await self.funds.deferral("claimCollateral", earlier)
            if deferred is not None:  # the keeper's account cannot pay for gas now (``sender_funds``)
                report.unclaimed[ref] = deferred
                return
        if leader is not None:
            await leader.fence()
        try:
            tx_hash = await self._send(key, call)
        except ChainError as err:
            self.funds.saw(err)
            report.unclaimed[ref] = str(err)
            log.warning("keeper on chain %s: claimCollateral of loan %s: %s", self.chain_id, ref, err)
            return
        report.claimed[ref] = tx_hash
        self._claim_refusals.pop(ref, None)
        log.info(
            "keeper on chain %s: claimed loan %s's collateral (%s of %s) for %s in %s",
            self.chain_id,
            ref,
            claimable.amount,
            claimable.asset,
            claimable.borrower,
            tx_hash,
        )

    async def _claim_attempt(self, ref: int) -> tuple[str | None, IntentRecord | None, tuple[IntentRecord, ...]]:
        """The key of the claim attempt to send or resume, its intent when it exists, and the failed attempts before
        it, in order: the first attempt stored that did not fail (a reverted, failed or dropped one stays so under
        its key), else the one after the last stored; no key once ``MAX_CLAIM_ATTEMPTS`` failed, not counting those
        the node refused for the keeper's funds (they never reached the token: until 2026-11-29 five rounds of an
        empty account ended the sweep of the loan for good). Every attempt stored is read: a missing number is no
        end (0037 rekeyed each attempt by the CollateralManager it was sent to)."""
        stored = await self.transactions.store.attempts(claim_intent_key(self.chain_id, self.chain.manager, ref))
        for _, existing in stored:
            if existing.status not in CLAIM_FAILED:
                return existing.key, existing, ()
        earlier = tuple(intent for _, intent in stored)
        attempt = stored[-1][0] + 1 if stored else 1
        if attempt - sum(refused_for_funds(intent) for intent in earlier) > MAX_CLAIM_ATTEMPTS:
            return None, None, earlier
        return claim_intent_key(self.chain_id, self.chain.manager, ref, attempt), None, earlier

    async def _relayed_claim_in_flight(self, ref: int) -> str | None:
        """The key of the relayer's claim of ``ref`` that is in flight (any of its attempts stored), if one is."""
        stored = await self.transactions.store.attempts(relayed_claim_key(self.chain_id, self.chain.manager, ref))
        return next((relayed.key for _, relayed in stored if relayed.status not in TERMINAL_STATUSES), None)

    def _skip(self, report: RoundReport, ref: int, reason: str) -> None:
        report.skipped[ref] = reason
        log.warning("keeper on chain %s: loan %s not liquidated: %s", self.chain_id, ref, reason)

    async def _simulate(self, call: Call) -> str | None:
        """``eth_call`` of ``call`` from the keeper at the head block: None when it succeeds, else the revert."""
        assert call.to is not None
        request = {"from": self.chain.keeper, "to": call.to, "data": "0x" + call.data.hex()}
        return await revert_of(self.client.provider, request)

    async def _send(self, key: str, call: Call) -> str:
        """Send ``call`` under intent ``key`` (once per key), wait for it, and apply its events to the ledger."""
        try:
            await self.transactions.submit(key, call)
        except GasEstimationFailed as err:
            raise ChainError(f"{key}: {err}") from err
        return await self._confirm(key)

    async def _confirm(self, key: str) -> str:
        """Wait for intent ``key``'s receipt (at most ``receipt_timeout``) and apply its events to the ledger."""
        try:
            receipt = await self.transactions.wait(key, within=self.settings.receipt_timeout)
        except TransactionReverted as err:
            raise ChainError(f"{key}: {err}") from err
        await apply_receipt(self.database, self.client.w3, self.record, self.chain_id, receipt.tx_hash)
        return receipt.tx_hash
