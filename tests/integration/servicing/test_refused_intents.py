"""The operator's ``markDefault`` and ``cancelUnfunded`` the node refused (the operator's account out of gas:
``anvil_setBalance`` to 0), on the package's own devnet with the ledger on PostgreSQL: each is sent again as its
next attempt — by the default job's next round, or by an admin asking again — until one is taken, and then never
again. Before, each had one intent key per loan, ever: the failed intent answered every later send, so a loan past
its maturity plus the grace period was never marked in default (its lender could never recover through liquidation),
and an unfunded loan's cancel — the job's, and an admin's settlement — failed for ever."""

from __future__ import annotations

from functools import partial

import pytest
from sqlalchemy import select

from aggregator.funding_settlement import FUNDED, NOT_FUNDED, FundingSettlements
from aggregator.ledger import CANCELLED, DEFAULTED
from aggregator.platform import ChainRuntime
from aggregator.servicing.defaults import DefaultJob, cancel_intent_key, default_intent_key
from aggregator.servicing.delinquency import SECONDS_PER_DAY
from chain.errors import ChainError, IntentConflict
from chain.signers import Role
from chain.transactions import Call
from providers.models import FundingState
from store.aggregator import LoanRow
from store.chain import CONFIRMED, DROPPED, FAILED
from store.db import Database
from store.funding_settlements import SqlFundingSettlementStore
from tests.contracts.harness import USDC, WETH, Harness
from tests.integration.servicing.conftest import (
    borrower_with_collateral,
    intent_status,
    out_of_gas,
    record_in_ledger,
    unfunded_loan,
)
from tests.support.devnet import DeployedChain

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ADMIN = "admin:key-7"
ACTIVE, DEFAULTED_ONCHAIN, CANCELLED_ONCHAIN = 1, 3, 5  # LoanStatus in the contracts' enum


@pytest.fixture
def lender_says() -> dict[str, FundingState]:
    """What the lender answers of its offers (by its reference) when the default job asks before cancelling."""
    return {}


@pytest.fixture
def asking_job(job: DefaultJob, lender_says: dict[str, FundingState]) -> DefaultJob:
    """The package's default job, asking the lender (``lender_says``) whether it funded an unfunded loan."""

    async def funding_of(provider_id: str, provider_ref: str) -> FundingState:
        return lender_says.get(provider_ref, FundingState.UNKNOWN)

    return DefaultJob(job.client, job.record, job.database, job.operator, holder=job.holder, settings=job.settings,
                      funding_of=funding_of)  # fmt: skip


def _runtime(job: DefaultJob) -> ChainRuntime:
    """The chain as an API process has it, with the job's operator account."""
    return ChainRuntime(job.client, job.record, job.operator, senders={Role.OPERATOR: job.operator})


def _settlements(job: DefaultJob) -> FundingSettlements:
    """An admin's settlements, through the job's operator account."""
    chain = _runtime(job)
    return FundingSettlements(SqlFundingSettlementStore(job.database), {chain.name: chain}, job.database,
                              wait_seconds=30)  # fmt: skip


def _ledger_status(database: Database, loan_id: str) -> str:
    with database.unit_of_work() as uow:
        return uow.session.scalars(select(LoanRow.status).where(LoanRow.id == loan_id)).one()


async def test_a_mark_default_the_node_refused_is_sent_again_by_the_next_round(
    own_chain: DeployedChain, servicing_db: Database, job: DefaultJob
) -> None:
    """A loan past its maturity plus the grace period, its ``markDefault`` refused by the node: before, the next
    round resumed the failed intent (TransactionRejected, every round) and the loan was never marked in default.
    Now the next round sends the next attempt, simulated first; once it is taken, nothing more is sent."""
    harness, borrower = borrower_with_collateral(own_chain)
    loan_ref, receipt = harness.open_loan(borrower, principal=1_000 * USDC, originationFee=0, term=SECONDS_PER_DAY)
    record_in_ledger(servicing_db, own_chain, receipt)
    with servicing_db.unit_of_work() as uow:
        loan_id = uow.session.scalars(select(LoanRow.id).where(LoanRow.onchain_loan_id == loan_ref)).one()
    harness.advance(int(harness.loan(loan_ref)["maturity"]) + 8 * SECONDS_PER_DAY - harness.now())

    with out_of_gas(own_chain, job.operator.account.address):
        refused = await job.run_round()
    assert loan_ref not in refused.defaulted
    assert loan_ref in refused.skipped, "refused by the node"
    assert harness.loan(loan_ref)["status"] == ACTIVE

    marked = await job.run_round()
    assert loan_ref in marked.defaulted, marked.skipped.get(loan_ref)
    assert harness.loan(loan_ref)["status"] == DEFAULTED_ONCHAIN
    assert _ledger_status(servicing_db, loan_id) == DEFAULTED
    marks = partial(default_intent_key, own_chain.chain_id, own_chain.record.address("CreditAggregator"), loan_ref)
    assert [await intent_status(job.operator, marks(n)) for n in (1, 2)] == [FAILED, CONFIRMED]
    again = await job.run_round()
    assert (loan_ref in again.defaulted, loan_ref in again.skipped) == (False, False), "marked once"
    assert await intent_status(job.operator, marks(3)) is None


async def test_a_cancel_the_node_refused_is_sent_again_by_the_next_round(
    own_chain: DeployedChain, servicing_db: Database, asking_job: DefaultJob, lender_says: dict[str, FundingState]
) -> None:
    """An unfunded loan its lender says it did not fund, its ``cancelUnfunded`` refused by the node: before, every
    later round resumed the failed intent and the borrower's collateral stayed locked. Now the next round asks the
    lender again and sends the next attempt; the loan is cancelled once and its collateral is back."""
    job = asking_job
    harness = Harness(own_chain)
    loan_ref, loan_id, borrower = unfunded_loan(own_chain, servicing_db)
    lender_says[f"ref-{loan_ref}"] = FundingState.FAILED

    with out_of_gas(own_chain, job.operator.account.address):
        refused = await job.run_round()
    assert loan_ref not in refused.cancelled
    assert "not cancelled" in refused.skipped[loan_ref]
    assert harness.loan(loan_ref)["status"] == ACTIVE

    cancelled = await job.run_round()
    assert loan_ref in cancelled.cancelled, cancelled.skipped.get(loan_ref)
    assert harness.loan(loan_ref)["status"] == CANCELLED_ONCHAIN
    assert int(harness.weth.functions.balanceOf(borrower.address).call()) == WETH, "the collateral is back"
    assert _ledger_status(servicing_db, loan_id) == CANCELLED
    cancels = partial(cancel_intent_key, own_chain.chain_id, own_chain.record.address("CreditAggregator"), loan_ref)
    assert [await intent_status(job.operator, cancels(n)) for n in (1, 2)] == [FAILED, CONFIRMED]
    again = await job.run_round()
    assert (loan_ref in again.cancelled, loan_ref in again.skipped) == (False, False), "no longer open"
    assert await intent_status(job.operator, cancels(3)) is None


async def test_an_admin_settles_not_funded_after_the_node_refused_the_cancel(
    own_chain: DeployedChain, servicing_db: Database, job: DefaultJob
) -> None:
    """An admin's settle-as-not-funded whose cancel the node refused answers 503 (ChainError): before, asking again
    met the same failed intent for ever. Now asking again sends the next attempt, simulated first."""
    harness = Harness(own_chain)
    loan_ref, loan_id, borrower = unfunded_loan(own_chain, servicing_db)

    with out_of_gas(own_chain, job.operator.account.address), pytest.raises(ChainError):
        await _settlements(job).settle(loan_id, False, ADMIN, "sim-bank never paid out")
    assert harness.loan(loan_ref)["status"] == ACTIVE

    settled = await _settlements(job).settle(loan_id, False, ADMIN, "asked again")
    assert (settled.outcome, settled.confirmed) == (NOT_FUNDED, True), settled
    assert harness.loan(loan_ref)["status"] == CANCELLED_ONCHAIN
    assert int(harness.weth.functions.balanceOf(borrower.address).call()) == WETH, "the collateral is back"
    assert _ledger_status(servicing_db, loan_id) == CANCELLED
    cancels = partial(cancel_intent_key, own_chain.chain_id, own_chain.record.address("CreditAggregator"), loan_ref)
    assert [await intent_status(job.operator, cancels(n)) for n in (1, 2, 3)] == [FAILED, CONFIRMED, None]


async def test_an_admin_settles_funded_after_the_node_refused_the_cancel_and_bars_the_next_attempt(
    own_chain: DeployedChain, servicing_db: Database, asking_job: DefaultJob, lender_says: dict[str, FundingState]
) -> None:
    """A cancel the node refused cancelled nothing: an admin may still settle the loan funded (before, the failed
    intent answered the bar of the one key, and the settlement was refused for ever as "being cancelled"). The bar
    falls on the next attempt, so no cancel can be sent after it — neither by the job nor by anyone."""
    job = asking_job
    harness = Harness(own_chain)
    loan_ref, loan_id, _ = unfunded_loan(own_chain, servicing_db)
    lender_says[f"ref-{loan_ref}"] = FundingState.FAILED
    with out_of_gas(own_chain, job.operator.account.address):
        assert loan_ref not in (await job.run_round()).cancelled

    settled = await _settlements(job).settle(loan_id, True, ADMIN, "sim-bank's wire of the 20th, found after all")
    assert settled.outcome == FUNDED
    cancels = partial(cancel_intent_key, own_chain.chain_id, own_chain.record.address("CreditAggregator"), loan_ref)
    assert [await intent_status(job.operator, cancels(n)) for n in (1, 2)] == [FAILED, DROPPED]  # refused, barred
    with pytest.raises(IntentConflict):
        await job.operator.submit(cancels(2), Call.function(_runtime(job).aggregator(), "cancelUnfunded", loan_ref))
    serviced = await job.run_round()
    assert loan_ref not in serviced.cancelled, "serviced from now on: never cancelled"
    assert harness.loan(loan_ref)["status"] == ACTIVE
