"""The default job on the package's own devnet: a one-day loan goes past due by the chain's clock (each bucket
announced once), the operator's markDefault is sent once after maturity plus the grace period even with two jobs
racing, the ledger follows the LoanDefaulted event, the loan reads 90+ days past due when the clock says so, and the
keeper then liquidates the defaulted loan in full; a defaulted loan funded off-chain is liquidated to its lender's
settlement address (the devnet profile's, one per simulated lender); a loan its lender never funded is neither
defaulted nor liquidated but cancelled once, its collateral back with the borrower, and reconciles clean."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from aggregator.accept_saga import FUND_REFUSED
from aggregator.ledger import CANCELLED, DEFAULTED
from aggregator.loans import LoanScope, LoanService
from aggregator.platform import ChainRuntime
from aggregator.servicing.defaults import DefaulterSettings, DefaultJob
from aggregator.servicing.delinquency import SECONDS_PER_DAY, Bucket
from aggregator.servicing.keeper import Keeper
from chain.client import ChainClient
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Role, devnet_account, devnet_signer
from chain.transactions import TransactionManager
from compliance.reconcile import Category
from providers.models import FundingState
from store.accept_rows import AcceptRow
from store.aggregator import LoanRow
from store.chain import SqlChainStore
from store.db import Database
from store.loans import SqlLoanStore
from store.outbox import OutboxEventRow
from tests.contracts.harness import USDC, WETH, Harness
from tests.integration.servicing.conftest import borrower_with_collateral, record_in_ledger
from tests.support.devnet import DeployedChain
from tests.support.ledger_facts import add_quote
from tests.support.reconcile import LoanMaker, index, reconciled

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

OPERATOR, KEEPER = devnet_signer(Role.OPERATOR), devnet_signer(Role.KEEPER)
TERM = SECONDS_PER_DAY


@pytest.fixture(scope="module")
def one_day_loan(own_chain: DeployedChain, servicing_db: Database) -> tuple[int, str, int]:
    """A one-day pool loan; its ledger id and maturity."""
    harness, borrower = borrower_with_collateral(own_chain)
    loan_ref, receipt = harness.open_loan(borrower, principal=1_000 * USDC, originationFee=0, term=TERM)
    record_in_ledger(servicing_db, own_chain, receipt)
    with servicing_db.unit_of_work() as uow:
        (loan_id,) = [row.id for row in uow.session.query(LoanRow).filter(LoanRow.onchain_loan_id == loan_ref)]
    return loan_ref, loan_id, int(harness.loan(loan_ref)["maturity"])


@pytest.fixture
def lender_says() -> dict[str, FundingState]:
    """What the lender answers of its offers (by its reference) when the default job asks before cancelling."""
    return {}


@pytest.fixture
async def jobs(
    own_chain: DeployedChain, servicing_db: Database, lender_says: dict[str, FundingState]
) -> AsyncIterator[list[DefaultJob]]:
    async def funding_of(provider_id: str, provider_ref: str) -> FundingState:
        return lender_says.get(provider_ref, FundingState.UNKNOWN)

    made: list[tuple[ChainClient, TransactionManager]] = []
    jobs = []
    for holder in ("defaulter-a", "defaulter-b"):
        client = await ChainClient(own_chain.config).connect()
        store = SqlChainStore(servicing_db.sessions)
        operator = await TransactionManager(client, OPERATOR, store, revert_artifacts=REVERT_ARTIFACTS).start()
        made.append((client, operator))
        settings = DefaulterSettings(ttl=timedelta(seconds=3), interval=0.2)
        jobs.append(
            DefaultJob(
                client,
                own_chain.record,
                servicing_db,
                operator,
                holder=holder,
                settings=settings,
                funding_of=funding_of,
            )
        )
    yield jobs
    for client, operator in made:
        await operator.close()
        await client.close()


def _advance_to(harness: Harness, timestamp: int) -> None:
    harness.advance(max(timestamp - harness.now(), 1))


async def test_past_due_then_default_once_then_90_plus(
    own_chain: DeployedChain, servicing_db: Database, one_day_loan: tuple[int, str, int], jobs: list[DefaultJob]
) -> None:
    harness = Harness(own_chain)
    loan_ref, loan_id, maturity = one_day_loan
    grace = int(harness.aggregator.functions.gracePeriod().call())
    nonce = harness.w3.eth.get_transaction_count(OPERATOR.address)

    report = await jobs[0].run_round()
    assert report.buckets[loan_ref] is Bucket.CURRENT
    assert not report.defaulted

    _advance_to(harness, maturity + 3 * SECONDS_PER_DAY)
    report = await jobs[0].run_round()
    assert report.buckets[loan_ref] is Bucket.DPD_1_29
    assert report.announced == [(loan_ref, Bucket.DPD_1_29)]
    assert not report.defaulted
    assert (await jobs[1].run_round()).announced == []  # announced once, whoever runs next

    _advance_to(harness, maturity + grace + 60)
    first, second = await asyncio.gather(jobs[0].run_round(), jobs[1].run_round())
    assert loan_ref in first.defaulted or loan_ref in second.defaulted
    assert harness.w3.eth.get_transaction_count(OPERATOR.address) == nonce + 1  # markDefault sent once
    assert harness.loan(loan_ref)["status"] == 3  # LoanStatus.Defaulted
    with servicing_db.unit_of_work() as uow:
        assert uow.session.get(LoanRow, loan_id).status == DEFAULTED  # type: ignore[union-attr]
    assert not (await jobs[0].run_round()).defaulted
    assert harness.w3.eth.get_transaction_count(OPERATOR.address) == nonce + 1

    _advance_to(harness, maturity + 90 * SECONDS_PER_DAY + 1)
    report = await jobs[0].run_round()
    assert report.buckets[loan_ref] is Bucket.DPD_90_PLUS
    assert [bucket for _, bucket in report.announced] == [Bucket.DPD_30_59, Bucket.DPD_60_89, Bucket.DPD_90_PLUS]
    with servicing_db.unit_of_work() as uow:  # the outbox: each bucket once, and one loan.defaulted (the ledger's)
        events = uow.session.scalars(
            select(OutboxEventRow).where(OutboxEventRow.loan_id == loan_id).order_by(OutboxEventRow.sequence)
        ).all()
        payloads = [event.body["data"] for event in events if event.event_type == "loan.past_due"]
        assert [event.event_type for event in events].count("loan.defaulted") == 1
    assert [p["bucket"] for p in payloads] == ["1-29", "30-59", "60-89", "90+"]
    assert payloads[-1]["days_past_due"] == 91

    runtime = ChainRuntime(jobs[0].client, own_chain.record, jobs[0].operator)
    detail = await LoanService(SqlLoanStore(servicing_db), {own_chain.name: runtime}).detail(loan_id, LoanScope())
    assert detail.live is not None
    assert detail.live.delinquency.bucket is Bucket.DPD_90_PLUS
    assert detail.live.delinquency.days_past_due == 91
    listed = await LoanService(SqlLoanStore(servicing_db), {own_chain.name: runtime}).delinquencies([detail.loan])
    assert (listed[loan_id].days_past_due, listed[loan_id].bucket) == (91, Bucket.DPD_90_PLUS)  # as lists show it

    # the keeper liquidates a defaulted loan whatever its health: in full, the rest of the collateral back
    keeper_tm = await TransactionManager(jobs[0].client, KEEPER, SqlChainStore(servicing_db.sessions)).start()
    try:
        liquidated = await Keeper(jobs[0].client, own_chain.record, servicing_db, keeper_tm).run_round()
    finally:
        await keeper_tm.close()
    assert [sent.action for sent in liquidated.sent] == ["liquidate"]
    assert liquidated.sent[0].outcome is not None
    assert liquidated.sent[0].outcome.bad_debt == 0  # 1 WETH covers the debt: repaid in full, the rest back
    assert harness.loan(loan_ref)["status"] == 4  # LoanStatus.Liquidated
    with servicing_db.unit_of_work() as uow:
        assert uow.session.get(LoanRow, loan_id).status == "liquidated"  # type: ignore[union-attr]


async def test_a_defaulted_traditional_loan_is_liquidated_to_its_lenders_settlement_address(
    own_chain: DeployedChain, servicing_db: Database, jobs: list[DefaultJob]
) -> None:
    harness, borrower = borrower_with_collateral(own_chain)
    loan_ref, receipt = harness.open_loan(borrower, pool=False, principal=1_000 * USDC, originationFee=0, term=TERM)
    record_in_ledger(servicing_db, own_chain, receipt)  # funded off-chain by sim-bank (the harness's provider id)
    _advance_to(harness, int(harness.loan(loan_ref)["maturity"]) + 8 * SECONDS_PER_DAY)
    assert loan_ref in (await jobs[0].run_round()).defaulted

    settlement = own_chain.record.parameters["settlementAddresses"]["sim-bank"]
    assert settlement == devnet_account(15).address
    before = int(harness.usdc.functions.balanceOf(settlement).call())
    keeper_tm = await TransactionManager(jobs[0].client, KEEPER, SqlChainStore(servicing_db.sessions)).start()
    try:
        report = await Keeper(jobs[0].client, own_chain.record, servicing_db, keeper_tm).run_round()
    finally:
        await keeper_tm.close()
    (sent,) = [sent for sent in report.sent if sent.loan_ref == loan_ref]
    assert sent.action == "liquidate"
    assert sent.outcome is not None
    assert int(harness.usdc.functions.balanceOf(settlement).call()) - before == sent.outcome.debt_repaid


async def test_a_traditional_loan_its_lender_never_funded_is_neither_defaulted_nor_liquidated_but_cancelled(
    own_chain: DeployedChain, servicing_db: Database, jobs: list[DefaultJob], lender_says: dict[str, FundingState]
) -> None:
    """The lender refused the funding instruction (or reported the funding failed): the loan is open on-chain with the
    borrower's collateral locked and the borrower was never paid out. Marked in default, it would be liquidated to that
    lender's settlement address (the test above); the keeper leaves it alone and says why, and the default job has
    the operator cancel it once the lender says it did not fund it (not while it says funded: a refusal may be a lost
    answer's replay): the collateral is back in the borrower's wallet and the ledger shows it cancelled."""
    harness, borrower = borrower_with_collateral(own_chain)
    loan_ref, receipt = harness.open_loan(borrower, pool=False, principal=1_000 * USDC, originationFee=0, term=TERM)
    record_in_ledger(servicing_db, own_chain, receipt)
    offer_ref = f"never-funded-{loan_ref}"
    with servicing_db.unit_of_work() as uow:
        loan = uow.session.scalars(select(LoanRow).where(LoanRow.onchain_loan_id == loan_ref)).one()
        loan_id, loan_borrower = loan.id, loan.borrower_id
    quote_id = _quote_of(servicing_db, own_chain, offer_ref, loan_borrower)
    with servicing_db.unit_of_work() as uow:
        row = uow.session.get(LoanRow, loan_id)
        assert row is not None
        row.quote_id, row.provider_id = quote_id, "sim-bank"  # as an accept of sim-bank's quote records it
        uow.session.add(_refused_accept(loan_id))
        uow.commit()
    assert int(harness.weth.functions.balanceOf(borrower.address).call()) == 0  # locked in the CollateralManager
    _advance_to(harness, int(harness.loan(loan_ref)["maturity"]) + 8 * SECONDS_PER_DAY)

    harness.set_weth_price(100)  # the collateral under the debt: a funded loan would be liquidated now
    keeper_tm = await TransactionManager(jobs[0].client, KEEPER, SqlChainStore(servicing_db.sessions)).start()
    try:
        keeper = await Keeper(jobs[0].client, own_chain.record, servicing_db, keeper_tm).run_round()
    finally:
        await keeper_tm.close()
        harness.set_weth_price(3_000)
    assert all(sent.loan_ref != loan_ref for sent in keeper.sent)
    assert "never funded" in keeper.skipped[loan_ref]

    nonce = harness.w3.eth.get_transaction_count(OPERATOR.address)
    lender_says[offer_ref] = FundingState.FUNDED  # a lost answer's replay: the lender paid out after all
    disputed = await jobs[0].run_round()
    assert loan_ref not in disputed.cancelled
    assert "sim-bank says the offer is funded" in disputed.skipped[loan_ref]
    assert loan_ref in disputed.held, "its liquidation is held meanwhile: liquidate is open to anyone"
    assert harness.w3.eth.get_transaction_count(OPERATOR.address) == nonce + 1, "the hold only"
    manager = harness.chain.contract("CollateralManager")
    assert manager.functions.liquidationHeld(loan_ref).call()
    harness.set_weth_price(100)
    stranger: LocalAccount = Account.create()
    harness.impersonate(stranger.address)
    harness.fund(stranger.address, usdc=2_000 * USDC)
    harness.approve_all(stranger.address)
    refused = harness.revert_of(manager.functions.liquidate(loan_ref, 2**256 - 1), stranger.address)
    harness.set_weth_price(3_000)
    assert refused.name == "LiquidationHeld", refused
    second = await jobs[1].run_round()
    assert loan_ref not in second.held
    assert harness.w3.eth.get_transaction_count(OPERATOR.address) == nonce + 1, "held once"
    nonce = harness.w3.eth.get_transaction_count(OPERATOR.address)

    lender_says[offer_ref] = FundingState.FAILED
    report = await jobs[0].run_round()
    assert loan_ref not in report.defaulted
    assert loan_ref not in report.buckets, "nobody is told a loan never paid out is past due"
    assert loan_ref in report.cancelled, report.skipped.get(loan_ref)
    assert harness.w3.eth.get_transaction_count(OPERATOR.address) == nonce + 1
    onchain = harness.loan(loan_ref)
    assert (onchain["status"], onchain["outstandingPrincipal"], onchain["collateralAmount"]) == (5, 0, 0)  # Cancelled
    assert int(harness.weth.functions.balanceOf(borrower.address).call()) == WETH, "the collateral is back"
    with servicing_db.unit_of_work() as uow:
        row = uow.session.get(LoanRow, loan_id)
        assert row is not None
        assert (row.status, row.outstanding_principal, row.collateral_amount) == (CANCELLED, 0, 0)
        events = uow.session.scalars(
            select(OutboxEventRow).where(OutboxEventRow.loan_id == loan_id).order_by(OutboxEventRow.sequence)
        ).all()
    assert [event.event_type for event in events] == ["loan.opened", "loan.cancelled", "loan.closed"]
    assert events[-1].body["data"]["outcome"] == CANCELLED
    assert events[-1].body["loan"]["status"] == CANCELLED

    again = await asyncio.gather(jobs[0].run_round(), jobs[1].run_round())
    assert all(loan_ref not in r.cancelled and loan_ref not in r.skipped for r in again), "no longer open"
    assert harness.w3.eth.get_transaction_count(OPERATOR.address) == nonce + 1, "cancelUnfunded sent once"


async def test_a_loan_cancelled_unfunded_reconciles_clean(
    own_chain: DeployedChain, servicing_db: Database, jobs: list[DefaultJob], lender_says: dict[str, FundingState]
) -> None:
    """Our quote and accept of a traditional loan the lender refused to fund, the ledger built by the indexer, the
    default job's cancellation: the reconciler re-reads the chain and matches every fact, ``LoanCancelled`` too."""
    maker = LoanMaker(own_chain, servicing_db)
    maker.h.set_weth_price(3_000)
    start = maker.head() + 1
    loan = maker.open(0, lender=("sim-bank", "offer-never-funded"))
    with servicing_db.unit_of_work() as uow:
        accept = uow.session.scalars(select(AcceptRow).where(AcceptRow.loan_id == loan.loan_id)).one()
        accept.lender_state = FUND_REFUSED
        uow.commit()
    await index(own_chain, servicing_db, start)

    lender_says["offer-never-funded"] = FundingState.FAILED
    report = await jobs[0].run_round()
    assert loan.onchain_id in report.cancelled, report.skipped.get(loan.onchain_id)
    await index(own_chain, servicing_db, start)  # the indexer applies the confirmed events the receipt applied
    result = await reconciled(own_chain, servicing_db, start)
    assert result.items == [], result.items
    assert result.counts[Category.MATCHED.value] >= 3  # opened, cancelled, closed


def _quote_of(database: Database, chain: DeployedChain, offer_ref: str, borrower_id: str | None) -> str:
    """A quote of sim-bank's offer ``offer_ref`` for the loan's borrower (its id)."""
    quote_id = str(uuid.uuid4())
    add_quote(
        database,
        borrower_address="",
        borrower_id=borrower_id or None,
        offer_digest="0x" + uuid.uuid4().hex * 2,
        provider_id="sim-bank",
        chain_name=chain.name,
        chain_id=chain.chain_id,
        contract=chain.record.address("CreditAggregator"),
        offer={"providerRef": offer_ref},
        quote_id=quote_id,
    )
    return quote_id


def _refused_accept(loan_id: str) -> AcceptRow:
    """The accept of ``loan_id`` as the saga leaves it when the lender refuses to fund: recorded, fund-refused."""
    now = datetime.now(UTC)
    return AcceptRow(
        quote_id=str(uuid.uuid4()), request_id=str(uuid.uuid4()), borrower_id=str(uuid.uuid4()), kind="traditional",
        chain_name="ethereum-local", attempt=1, step="recorded", owner="gone", lease_until=now, updated_at=now,
        error="the lender refused", loan_id=loan_id, lender_state=FUND_REFUSED,
    )  # fmt: skip
