"""A loan funded off-chain whose funding instruction was never delivered (the lender's funding desk down: the accept
``recorded``, its lender state still ``reserved``), on the package's own devnet with the ledger on PostgreSQL: long
past its maturity plus the grace period and under water, it is neither announced past due nor marked in default
nor liquidated by the keeper, its liquidation is held on-chain (a stranger's ``liquidate`` reverts), nothing is
cancelled, and it reads flagged ``funding_pending`` with no live figures. Once the lender answers ``funded`` the
default job releases the hold it placed — once — and services the loan like any other. A hold or a release the node
refused (the operator's account out of gas) is sent again, as its next attempt, until one is taken."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import partial

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from aggregator.accept_saga import AcceptStep
from aggregator.loans import FUNDING_PENDING_LIVE, LoanFlag, LoanScope, LoanService
from aggregator.platform import ChainRuntime
from aggregator.servicing.defaults import DefaultJob, hold_intent_key, release_intent_key
from aggregator.servicing.delinquency import SECONDS_PER_DAY
from aggregator.servicing.keeper import Keeper
from chain.errors import ChainError
from chain.signers import Role, devnet_signer
from chain.transactions import TransactionManager
from store.accept_rows import AcceptRow
from store.aggregator import LoanRow
from store.chain import CONFIRMED, FAILED, SqlChainStore
from store.db import Database
from store.loans import SqlLoanStore
from store.outbox import OutboxEventRow
from tests.contracts.harness import USDC, WETH, Harness
from tests.integration.servicing.conftest import intent_status, out_of_gas, record_in_ledger
from tests.support.devnet import DeployedChain
from tests.support.ledger_facts import add_quote

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

KEEPER = devnet_signer(Role.KEEPER)


def _undelivered_loan(harness: Harness, chain: DeployedChain, database: Database) -> tuple[int, str, str]:
    """A one-day loan funded off-chain by sim-bank, recorded by its accept, whose funding instruction the lender's
    desk answered 503: its on-chain id, ledger id and quote id."""
    borrower: LocalAccount = Account.create()
    harness.impersonate(borrower.address)
    harness.fund(borrower.address, weth=WETH)
    harness.approve_all(borrower.address)
    loan_ref, receipt = harness.open_loan(
        borrower, pool=False, principal=1_000 * USDC, originationFee=0, term=SECONDS_PER_DAY
    )
    record_in_ledger(database, chain, receipt)
    with database.unit_of_work() as uow:
        loan = uow.session.scalars(select(LoanRow).where(LoanRow.onchain_loan_id == loan_ref)).one()
        loan_id, borrower_id = loan.id, loan.borrower_id
    quote_id = str(uuid.uuid4())
    add_quote(
        database, borrower_address="", borrower_id=borrower_id or None, offer_digest="0x" + uuid.uuid4().hex * 2,
        provider_id="sim-bank", chain_name=chain.name, chain_id=chain.chain_id,
        contract=chain.record.address("CreditAggregator"), offer={"providerRef": f"undelivered-{loan_ref}"},
        quote_id=quote_id, disclosure={"asset": "USDC", "assetDecimals": 6, "payments": []},  # judged by maturity
    )  # fmt: skip
    now = datetime.now(UTC)
    with database.unit_of_work() as uow:
        row = uow.session.get(LoanRow, loan_id)
        assert row is not None
        row.quote_id, row.provider_id = quote_id, "sim-bank"  # as an accept of sim-bank's quote records it
        row.opened_outside_accept = False
        uow.session.add(
            AcceptRow(
                quote_id=quote_id, request_id=str(uuid.uuid4()), borrower_id=str(uuid.uuid4()), kind="traditional",
                chain_name=chain.name, attempt=1, step=AcceptStep.RECORDED.value, owner="gone", lease_until=now,
                updated_at=now, error="funding instruction not delivered: sim-bank answered 503", loan_id=loan_id,
                lender_state="reserved",
            )
        )  # fmt: skip
        uow.commit()
    return loan_ref, loan_id, quote_id


async def _keeper_round(job: DefaultJob, chain: DeployedChain, database: Database) -> dict[int, str]:
    """One keeper round with the WETH price under the debt; what it skipped, and it sent nothing for ``loan_ref``."""
    keeper_tm = await TransactionManager(job.client, KEEPER, SqlChainStore(database.sessions)).start()
    try:
        report = await Keeper(job.client, chain.record, database, keeper_tm).run_round()
    finally:
        await keeper_tm.close()
    return {sent.loan_ref: sent.action for sent in report.sent} | report.skipped


async def test_a_loan_whose_funding_instruction_was_not_delivered_is_held_not_serviced_until_funded(
    own_chain: DeployedChain, servicing_db: Database, job: DefaultJob
) -> None:
    harness = Harness(own_chain)
    harness.set_weth_price(3_000)
    loan_ref, loan_id, quote_id = _undelivered_loan(harness, own_chain, servicing_db)
    harness.advance(int(harness.loan(loan_ref)["maturity"]) + 8 * SECONDS_PER_DAY - harness.now())
    manager = own_chain.contract("CollateralManager")

    report = await job.run_round()
    assert loan_ref not in report.buckets, "nobody is told a loan perhaps never paid out is past due"
    assert loan_ref not in report.defaulted
    assert loan_ref not in report.cancelled, "its lender may yet fund it: nothing is cancelled"
    assert loan_ref in report.held, report.skipped.get(loan_ref)
    assert manager.functions.liquidationHeld(loan_ref).call()
    harness.set_weth_price(100)  # the collateral under the debt: a funded loan would be liquidated now
    try:
        keeper = await _keeper_round(job, own_chain, servicing_db)
        stranger: LocalAccount = Account.create()
        harness.impersonate(stranger.address)
        harness.fund(stranger.address, usdc=2_000 * USDC)
        harness.approve_all(stranger.address)
        refused = harness.revert_of(manager.functions.liquidate(loan_ref, 2**256 - 1), stranger.address)
    finally:
        harness.set_weth_price(3_000)
    assert "not confirmed funding" in keeper[loan_ref], keeper.get(loan_ref)
    assert refused.name == "LiquidationHeld", refused
    again = await job.run_round()
    assert loan_ref not in again.held, "held once"
    assert (loan_ref in again.buckets, loan_ref in again.defaulted) == (False, False)

    runtime = ChainRuntime(job.client, own_chain.record, job.operator)
    loans = LoanService(SqlLoanStore(servicing_db), {own_chain.name: runtime})
    detail = await loans.detail(loan_id, LoanScope())
    assert detail.loan.flags == [LoanFlag.FUNDING_PENDING]
    assert (detail.live, detail.live_error) == (None, FUNDING_PENDING_LIVE)
    assert await loans.delinquencies([detail.loan]) == {}, "no days past due on a list either"
    flagged = loans.page(LoanScope(), None, 500, LoanFlag.FUNDING_PENDING)
    assert loan_id in [loan.id for loan in flagged]
    assert all(loan.funding_pending for loan in flagged)
    assert loan_id not in [loan.id for loan in loans.page(LoanScope(), None, 500, LoanFlag.UNFUNDED)]

    with servicing_db.unit_of_work() as uow:  # recovery delivered the instruction at last: the lender funded it
        accept = uow.session.get(AcceptRow, quote_id)
        assert accept is not None
        accept.step, accept.lender_state = AcceptStep.FUNDED.value, "funded"
        uow.commit()
    funded = await job.run_round()
    assert funded.released == [loan_ref], funded.skipped.get(loan_ref)
    assert not manager.functions.liquidationHeld(loan_ref).call()
    assert funded.buckets[loan_ref].value == "1-29", "serviced from now on: past due"
    assert loan_ref in funded.defaulted, "past its maturity plus the grace period"
    assert (await loans.detail(loan_id, LoanScope())).loan.flags == []
    assert loan_ref not in (await job.run_round()).released, "released once"
    with servicing_db.unit_of_work() as uow:
        events = uow.session.scalars(select(OutboxEventRow.event_type).where(OutboxEventRow.loan_id == loan_id)).all()
    assert events.count("loan.past_due") == 1, events


async def test_a_release_the_node_refused_is_sent_again_by_the_next_round_and_by_an_admin(
    own_chain: DeployedChain, servicing_db: Database, job: DefaultJob
) -> None:
    """The loan funded at last, the job's release refused (the operator's account out of gas): before, any release
    intent counted as released, so no round tried again, and an admin's settle-as-funded met the same failed intent
    for ever — ``liquidate`` reverted ``LiquidationHeld`` for everyone, an underwater loan nobody could liquidate. Now
    each round, and an admin's release, sends the next attempt until one is taken; then nothing more is sent."""
    harness = Harness(own_chain)
    harness.set_weth_price(3_000)
    loan_ref, _, quote_id = _undelivered_loan(harness, own_chain, servicing_db)
    manager = own_chain.contract("CollateralManager")
    assert loan_ref in (await job.run_round()).held
    with servicing_db.unit_of_work() as uow:  # the lender funded it
        accept = uow.session.get(AcceptRow, quote_id)
        assert accept is not None
        accept.step, accept.lender_state = AcceptStep.FUNDED.value, "funded"
        uow.commit()
    release = partial(release_intent_key, own_chain.chain_id, manager.address, loan_ref)

    with out_of_gas(own_chain, job.operator.account.address):
        refused = await job.run_round()
        assert loan_ref not in refused.released
        assert "not released yet" in refused.skipped[loan_ref]
        with pytest.raises(ChainError, match="not released"):  # an admin's settle-as-funded, the same moment
            await job.release_hold(loan_ref, within=10)
    assert manager.functions.liquidationHeld(loan_ref).call(), "nothing released yet"

    topped_up = await job.run_round()
    assert topped_up.released == [loan_ref], topped_up.skipped.get(loan_ref)
    assert not manager.functions.liquidationHeld(loan_ref).call(), "liquidated like any loan from now on"
    assert [await intent_status(job.operator, release(n)) for n in (1, 2, 3)] == [FAILED, FAILED, CONFIRMED]
    assert loan_ref not in (await job.run_round()).released, "released once"
    await job.release_hold(loan_ref, within=10)  # an admin asking again: nothing held, nothing sent
    assert await intent_status(job.operator, release(4)) is None


async def test_a_hold_the_node_refused_is_sent_again_by_the_next_round(
    own_chain: DeployedChain, servicing_db: Database, job: DefaultJob
) -> None:
    """The job's hold of a loan whose funding is pending refused (the operator's account out of gas): before, the
    failed intent counted as sent, and the loan stayed open to anyone's ``liquidate`` for as long as its funding was
    pending. Now the next round sends the next attempt; a hold taken is not sent again."""
    harness = Harness(own_chain)
    harness.set_weth_price(3_000)
    loan_ref, _, _ = _undelivered_loan(harness, own_chain, servicing_db)
    manager = own_chain.contract("CollateralManager")
    hold = partial(hold_intent_key, own_chain.chain_id, manager.address, loan_ref)

    with out_of_gas(own_chain, job.operator.account.address):
        assert loan_ref not in (await job.run_round()).held
    assert not manager.functions.liquidationHeld(loan_ref).call()

    held = await job.run_round()
    assert loan_ref in held.held, held.skipped.get(loan_ref)
    assert manager.functions.liquidationHeld(loan_ref).call()
    assert [await intent_status(job.operator, hold(n)) for n in (1, 2)] == [FAILED, CONFIRMED]
    assert loan_ref not in (await job.run_round()).held, "held once"
    assert await intent_status(job.operator, hold(3)) is None
