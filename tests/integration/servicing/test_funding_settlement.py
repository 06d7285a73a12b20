"""An admin's settlement of an unfunded loan on the package's own devnet and PostgreSQL: the loan its lender refused
to fund reads ``unfunded`` (and is listed by the flag); settled funded, its accept is ``funded``, servicing takes it
up and the audit log names the admin; settled not funded, the operator cancels it at once and the collateral is back;
what is refused (no loan, a pool loan, a settled one, no operator account, a loan the contract will not cancel) is
refused before anything is recorded or sent."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from aggregator.errors import (
    HoldNotReleased,
    LoanNotCancellable,
    LoanNotFound,
    LoanNotUnfunded,
    OperatorUnavailable,
)
from aggregator.funding_settlement import FUNDED, NOT_FUNDED, FundingSettlements
from aggregator.ledger import CANCELLED
from aggregator.loans import LoanFlag, LoanScope
from aggregator.platform import ChainRuntime
from aggregator.servicing.defaults import cancel_intent_key, hold_intent_key
from aggregator.servicing.delinquency import SECONDS_PER_DAY
from chain.client import ChainClient
from chain.errors import IntentConflict
from chain.relay import REVERT_ARTIFACTS
from chain.signers import DEVNET_ROLE_INDEX, Role, devnet_account, devnet_signer
from chain.transactions import Call, TransactionManager
from store.accept_rows import AcceptRow
from store.aggregator import LoanRow
from store.chain import SqlChainStore
from store.compliance import AuditEntryRow
from store.db import Database
from store.funding_settlements import SqlFundingSettlementStore
from store.loans import SqlLoanStore
from store.servicing import SqlServicingStore
from tests.contracts.harness import WETH, Harness
from tests.integration.servicing.conftest import unfunded_loan
from tests.support.devnet import DeployedChain

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ADMIN = "admin:key-7"
OPERATOR_ACCOUNT = devnet_account(DEVNET_ROLE_INDEX[Role.OPERATOR])


@pytest.fixture
async def chain(own_chain: DeployedChain, servicing_db: Database) -> AsyncIterator[ChainRuntime]:
    """The chain as an API process has it, with the operator's account."""
    client = await ChainClient(own_chain.config).connect()
    store = SqlChainStore(servicing_db.sessions)
    relayer = await TransactionManager(client, devnet_signer(Role.RELAYER), store).start()
    operator = await TransactionManager(
        client, devnet_signer(Role.OPERATOR), store, revert_artifacts=REVERT_ARTIFACTS
    ).start()
    yield ChainRuntime(client, own_chain.record, relayer, senders={Role.OPERATOR: operator})
    await operator.close()
    await relayer.close()
    await client.close()


def _settlements(chain: ChainRuntime, database: Database) -> FundingSettlements:
    return FundingSettlements(SqlFundingSettlementStore(database), {chain.name: chain}, database, wait_seconds=60)


def _settlement_entries(database: Database, loan_id: str) -> list[dict[str, object]]:
    with database.unit_of_work() as uow:
        rows = uow.session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.kind == "funding-settlement", AuditEntryRow.subject == loan_id)
        ).all()
        return [dict(row.data) for row in rows]


async def test_an_unfunded_loan_settled_funded_is_serviced_from_then_on(
    own_chain: DeployedChain, servicing_db: Database, chain: ChainRuntime
) -> None:
    loan_ref, loan_id, _ = unfunded_loan(own_chain, servicing_db)
    loans = SqlLoanStore(servicing_db)
    with loans.reading() as reading:
        shown = reading.get(loan_id)
        flagged = [loan.id for loan in reading.page(LoanScope(), None, 500, LoanFlag.UNFUNDED)]
    assert shown is not None
    assert shown.flags == [LoanFlag.UNFUNDED]
    assert loan_id in flagged
    with SqlServicingStore(servicing_db).unit_of_work() as uow:
        (open_loan,) = [loan for loan in uow.servicing.open_loans(chain.chain_id, chain.aggregator().address)
                        if loan.id == loan_id]  # fmt: skip
    assert open_loan.unfunded, "servicing leaves it alone"

    harness = Harness(own_chain)
    manager = harness.chain.contract("CollateralManager")
    hold = Call.function(chain.w3.eth.contract(address=manager.address, abi=manager.abi), "holdLiquidation", loan_ref)
    hold_key = hold_intent_key(chain.chain_id, manager.address, loan_ref)
    await chain.operator.submit_and_wait(hold_key, hold, within=30)  # as the job
    assert manager.functions.liquidationHeld(loan_ref).call()
    without_operator = ChainRuntime(chain.client, chain.record, chain.transactions)
    with pytest.raises(OperatorUnavailable, match="liquidation is held"):
        await _settlements(without_operator, servicing_db).settle(loan_id, True, ADMIN, "no operator here")

    hurried = FundingSettlements(SqlFundingSettlementStore(servicing_db), {chain.name: chain}, servicing_db,
                                 wait_seconds=1e-6)  # fmt: skip
    with pytest.raises(HoldNotReleased, match="post the settlement again"):  # the release not mined within the wait
        await hurried.settle(loan_id, True, ADMIN, "sim-bank's wire of the 20th")
    assert len(_settlement_entries(servicing_db, loan_id)) == 1, "the settlement stands"
    cancel = Call.function(chain.aggregator(), "cancelUnfunded", loan_ref)
    with pytest.raises(IntentConflict):  # settled funded: no cancel can be sent from now on, by the job or an admin
        await chain.operator.submit(cancel_intent_key(chain.chain_id, chain.aggregator().address, loan_ref), cancel)

    settled = await _settlements(chain, servicing_db).settle(loan_id, True, ADMIN, "asked again: the hold goes")
    assert (settled.outcome, settled.confirmed, settled.tx_hash) == (FUNDED, True, None)
    assert not manager.functions.liquidationHeld(loan_ref).call(), "serviced now: liquidated when unhealthy"
    with servicing_db.unit_of_work() as uow:
        accept = uow.session.scalars(select(AcceptRow).where(AcceptRow.loan_id == loan_id)).one()
        assert (accept.step, accept.lender_state) == ("funded", "funded")
    with SqlServicingStore(servicing_db).unit_of_work() as uow:
        (open_loan,) = [loan for loan in uow.servicing.open_loans(chain.chain_id, chain.aggregator().address)
                        if loan.id == loan_id]  # fmt: skip
    assert not open_loan.unfunded, "serviced from now on: past due, default, liquidation"
    with loans.reading() as reading:
        assert reading.get(loan_id).flags == []  # type: ignore[union-attr]
        assert loan_id not in [loan.id for loan in reading.page(LoanScope(), None, 500, LoanFlag.UNFUNDED)]
    (entry,) = _settlement_entries(servicing_db, loan_id)
    assert entry == {
        "loan": loan_id, "chainId": chain.chain_id, "loanRef": loan_ref, "outcome": FUNDED, "by": ADMIN,
        "note": "sim-bank's wire of the 20th", "lenderSaid": "sim-bank refused to fund the loan: 409",
    }  # fmt: skip

    with pytest.raises(LoanNotUnfunded):
        await _settlements(chain, servicing_db).settle(loan_id, False, ADMIN, "changed my mind")
    assert len(_settlement_entries(servicing_db, loan_id)) == 1, "recorded once: neither the retry nor a refusal"


async def test_an_unfunded_loan_settled_not_funded_is_cancelled_now_and_the_collateral_returned(
    own_chain: DeployedChain, servicing_db: Database, chain: ChainRuntime
) -> None:
    loan_ref, loan_id, borrower = unfunded_loan(own_chain, servicing_db)
    harness = Harness(own_chain)
    assert int(harness.weth.functions.balanceOf(borrower.address).call()) == 0

    settled = await _settlements(chain, servicing_db).settle(loan_id, False, ADMIN, "sim-bank never paid out")
    assert (settled.outcome, settled.confirmed) == (NOT_FUNDED, True)
    assert settled.tx_hash is not None
    assert harness.loan(loan_ref)["status"] == 5  # LoanStatus.Cancelled
    assert int(harness.weth.functions.balanceOf(borrower.address).call()) == WETH, "the collateral is back"
    with servicing_db.unit_of_work() as uow:
        row = uow.session.get(LoanRow, loan_id)
        assert row is not None
        assert (row.status, row.outstanding_principal) == (CANCELLED, 0)
    assert [entry["outcome"] for entry in _settlement_entries(servicing_db, loan_id)] == [NOT_FUNDED]

    with pytest.raises(LoanNotUnfunded):
        await _settlements(chain, servicing_db).settle(loan_id, True, ADMIN, "too late: it is cancelled")


async def test_what_cannot_be_settled_is_refused_before_anything_is_recorded_or_sent(
    own_chain: DeployedChain, servicing_db: Database, chain: ChainRuntime
) -> None:
    harness = Harness(own_chain)
    operator = devnet_signer(Role.OPERATOR).address
    with pytest.raises(LoanNotFound):
        await _settlements(chain, servicing_db).settle(str(uuid.uuid4()), False, ADMIN, "no such loan")

    _, pool_loan, _ = unfunded_loan(own_chain, servicing_db, pool=True)  # a pool's loan is funded on-chain
    with pytest.raises(LoanNotUnfunded, match="not an open loan its lender refused to fund"):
        await _settlements(chain, servicing_db).settle(pool_loan, False, ADMIN, "a pool loan")

    loan_ref, loan_id, _ = unfunded_loan(own_chain, servicing_db)
    no_operator = ChainRuntime(chain.client, chain.record, chain.transactions)
    with pytest.raises(OperatorUnavailable, match="CREDITMESH_OPERATOR_KEY"):
        await _settlements(no_operator, servicing_db).settle(loan_id, False, ADMIN, "no operator here")
    assert _settlement_entries(servicing_db, loan_id) == []

    # in default before it was known unfunded: the contract will not cancel it (nothing is sent)
    harness.advance(int(harness.loan(loan_ref)["maturity"]) - harness.now() + 8 * SECONDS_PER_DAY)
    aggregator = harness.chain.contract("CreditAggregator")
    harness.send(aggregator.functions.markDefault(loan_ref), OPERATOR_ACCOUNT)
    nonce = harness.w3.eth.get_transaction_count(operator)
    with pytest.raises(LoanNotCancellable, match="would revert"):
        await _settlements(chain, servicing_db).settle(loan_id, False, ADMIN, "in default")
    assert harness.w3.eth.get_transaction_count(operator) == nonce, "nothing sent"
    assert _settlement_entries(servicing_db, loan_id) == [], "nor recorded: it did not happen"
