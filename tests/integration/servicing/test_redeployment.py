"""A second deployment of the contract set on a chain (contracts are not upgradeable: a new version is a new
deployment) numbers its loans from 1 again. Its loan 1 is serviced as its own: marked in default and liquidated
although loan 1 of the first deployment was marked in default and liquidated before — the operator's and the
keeper's intents name the contract they call, so the first deployment's intents do not stand for the second's. Once
the chain's deployment record names the new deployment, an admin's funding settlement of the old deployment's loan
is refused: sent through the record's contracts, it would cancel the new deployment's loan of the same id. A lender's
payments of the new deployment's loan are its own, under its lender's references even when they were the earlier
loan's too."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func
from web3 import Web3

from aggregator.accept_saga import FUND_REFUSED
from aggregator.assets import Asset, AssetRegistry
from aggregator.errors import LoanNotUnfunded
from aggregator.funding_settlement import FundingSettlements
from aggregator.ledger import DEFAULTED
from aggregator.offchain_payments import OffchainPayments, payment_ref_hash, record_intent_key
from aggregator.platform import ChainRuntime
from aggregator.receipts import LedgerReceipts
from aggregator.servicing.defaults import DefaultJob, cancel_intent_key, default_intent_key
from aggregator.servicing.delinquency import SECONDS_PER_DAY
from aggregator.servicing.keeper import Keeper, liquidation_intent_key
from chain.client import ChainClient
from chain.config import LOCAL_CHAINS
from chain.devnet import start_devnet
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Role, devnet_signer
from chain.transactions import TransactionManager
from contracts.deploy import deploy_to_devnet
from store.accept_rows import AcceptRow
from store.aggregator import LoanRow
from store.chain import SqlChainStore
from store.compliance import AuditEntryRow
from store.db import Database
from store.funding_settlements import SqlFundingSettlementStore
from store.loans import SqlLoanStore
from store.payments import SqlPaymentStore
from tests.contracts.harness import USDC, Harness
from tests.integration.servicing.conftest import borrower_with_collateral, record_in_ledger
from tests.support.devnet import DeployedChain
from tests.support.ledger_facts import add_quote

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

LIQUIDATED = 4  # LoanStatus.Liquidated in the contracts' enum


@pytest.fixture(scope="module")
def deployments(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DeployedChain, DeployedChain]]:
    """One devnet of the module's own with the devnet contract set deployed twice: the old deployment and the new."""
    devnet = start_devnet(LOCAL_CHAINS[0], port=0)
    try:
        folder = tmp_path_factory.mktemp("redeployment")
        w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
        old = deploy_to_devnet(devnet.name, devnet.chain_id, devnet.rpc_url, folder / "old.json")
        new = deploy_to_devnet(devnet.name, devnet.chain_id, devnet.rpc_url, folder / "new.json")
        yield DeployedChain(devnet, old, w3), DeployedChain(devnet, new, w3)
    finally:
        devnet.stop()


@pytest.fixture
async def operator(
    deployments: tuple[DeployedChain, DeployedChain], servicing_db: Database
) -> AsyncIterator[TransactionManager]:
    """The operator's account on the chain (one for both deployments, as in the platform's process)."""
    client = await ChainClient(deployments[0].config).connect()
    manager = await TransactionManager(
        client, devnet_signer(Role.OPERATOR), SqlChainStore(servicing_db.sessions), revert_artifacts=REVERT_ARTIFACTS
    ).start()
    yield manager
    await manager.close()
    await client.close()


def _one_day_loan(chain: DeployedChain, database: Database, *, pool: bool = True) -> tuple[int, str]:
    """A one-day loan on ``chain``'s deployment (a pool's, or sim-bank's funded off-chain), in the ledger: its
    on-chain id and ledger id."""
    harness, borrower = borrower_with_collateral(chain)
    loan_ref, receipt = harness.open_loan(
        borrower, pool=pool, principal=1_000 * USDC, originationFee=0, term=SECONDS_PER_DAY
    )
    record_in_ledger(database, chain, receipt)
    with database.unit_of_work() as uow:
        (loan_id,) = uow.session.query(LoanRow.id).filter(
            func.lower(LoanRow.contract) == chain.record.address("CreditAggregator").lower(),
            LoanRow.onchain_loan_id == loan_ref,
        )
    return loan_ref, str(loan_id[0])


async def _liquidate(chain: DeployedChain, database: Database) -> list[int]:
    """One keeper round on ``chain``'s deployment: the loans it liquidated."""
    client = await ChainClient(chain.config).connect()
    keeper = await TransactionManager(client, devnet_signer(Role.KEEPER), SqlChainStore(database.sessions)).start()
    try:
        report = await Keeper(client, chain.record, database, keeper).run_round()
    finally:
        await keeper.close()
        await client.close()
    return [sent.loan_ref for sent in report.sent if sent.action == "liquidate"]


async def test_loan_1_of_a_new_deployment_is_defaulted_and_liquidated_after_loan_1_of_the_old(
    deployments: tuple[DeployedChain, DeployedChain], servicing_db: Database, operator: TransactionManager
) -> None:
    old, new = deployments
    old_ref, _ = _one_day_loan(old, servicing_db)
    new_ref, new_id = _one_day_loan(new, servicing_db)
    assert old_ref == new_ref == 1  # each deployment numbers its loans from 1
    harness = Harness(new)
    grace = int(harness.aggregator.functions.gracePeriod().call())
    harness.advance(SECONDS_PER_DAY + grace + 60)

    assert list((await DefaultJob(operator.client, old.record, servicing_db, operator).run_round()).defaulted) == [1]
    assert await _liquidate(old, servicing_db) == [1]
    assert Harness(old).loan(1)["status"] == LIQUIDATED

    report = await DefaultJob(operator.client, new.record, servicing_db, operator).run_round()
    assert list(report.defaulted) == [1], report.skipped
    assert harness.loan(1)["status"] == 3  # LoanStatus.Defaulted, on the new deployment
    with servicing_db.unit_of_work() as uow:
        assert uow.session.get(LoanRow, new_id).status == DEFAULTED  # type: ignore[union-attr]
    assert await _liquidate(new, servicing_db) == [1]
    assert harness.loan(1)["status"] == LIQUIDATED

    aggregators = [chain.record.address("CreditAggregator") for chain in deployments]
    managers = [chain.record.address("CollateralManager") for chain in deployments]
    for aggregator, manager in zip(aggregators, managers, strict=True):  # one intent each, naming its contract
        marked = await operator.store.get_intent(default_intent_key(old.chain_id, aggregator, 1))
        liquidated = await operator.store.get_intent(liquidation_intent_key(old.chain_id, manager, 1, 1))
        assert marked is not None
        assert marked.to_address == aggregator
        assert liquidated is not None
        assert liquidated.to_address == manager


def _refused_by_its_lender(chain: DeployedChain, database: Database, loan_id: str) -> None:
    """The loan's quote from sim-bank and its accept, which sim-bank refused to fund (``fund-refused``)."""
    quote_id, now = str(uuid.uuid4()), datetime.now(UTC)
    with database.unit_of_work() as uow:
        loan = uow.session.get(LoanRow, loan_id)
        assert loan is not None
        borrower_id, borrower = loan.borrower_id, str(loan.borrower_address)
    borrower_id = add_quote(
        database, borrower_address=borrower, borrower_id=borrower_id, offer_digest="0x" + uuid.uuid4().hex * 2,
        provider_id="sim-bank", chain_name=chain.name, chain_id=chain.chain_id,
        contract=chain.record.address("CreditAggregator"), offer={"providerRef": f"ref-{uuid.uuid4()}"},
        quote_id=quote_id,
    )  # fmt: skip
    with database.unit_of_work() as uow:
        row = uow.session.get(LoanRow, loan_id)
        assert row is not None
        row.quote_id, row.provider_id, row.opened_outside_accept = quote_id, "sim-bank", False
        uow.session.add(
            AcceptRow(
                quote_id=quote_id, request_id=str(uuid.uuid4()), borrower_id=borrower_id, kind="traditional",
                chain_name=chain.name, attempt=1, step="recorded", owner="gone", lease_until=now, updated_at=now,
                error="sim-bank refused to fund the loan: 409", loan_id=loan_id, lender_state=FUND_REFUSED,
            )
        )  # fmt: skip
        uow.commit()


async def test_a_settlement_of_the_old_deployments_loan_is_refused_not_sent_to_the_new_ones_loan(
    deployments: tuple[DeployedChain, DeployedChain], servicing_db: Database, operator: TransactionManager
) -> None:
    old, new = deployments
    old_ref, old_id = _one_day_loan(old, servicing_db, pool=False)
    new_ref, _ = _one_day_loan(new, servicing_db, pool=False)  # funded by its lender: cancelUnfunded would pass
    assert old_ref == new_ref
    _refused_by_its_lender(old, servicing_db, old_id)
    # the platform's process after the upgrade: the chain's deployment record names the new deployment
    chain = ChainRuntime(operator.client, new.record, operator, senders={Role.OPERATOR: operator})
    settlements = FundingSettlements(SqlFundingSettlementStore(servicing_db), {new.name: chain}, servicing_db)

    for funded in (False, True):
        with pytest.raises(LoanNotUnfunded, match="earlier deployment of the contracts"):
            await settlements.settle(old_id, funded, "admin:key-7", "sim-bank says it never wired it")
    assert Harness(new).loan(new_ref)["status"] == 1  # LoanStatus.Active: the new deployment's loan untouched
    assert Harness(old).loan(old_ref)["status"] == 1
    assert await operator.store.get_intent(cancel_intent_key(new.chain_id, new.record.address("CreditAggregator"),
                                                             new_ref)) is None  # fmt: skip
    with servicing_db.unit_of_work() as uow:
        assert uow.session.query(AuditEntryRow).filter(AuditEntryRow.subject == old_id).count() == 0


#: sim-bank's schedule of the new deployment's loan: two installments, 1,000.50 USDC in all
SCHEDULE = {
    "assetDecimals": 6,
    "payments": [
        {"number": 1, "due": "2030-01-01", "amount": "500.25", "principal": "500.00", "interest": "0.25"},
        {"number": 2, "due": "2030-02-01", "amount": "500.25", "principal": "500.00", "interest": "0.25"},
    ],
}


def _lenders_loan(chain: DeployedChain, database: Database, loan_id: str, offer_ref: str, **quote: Any) -> None:
    """The loan as sim-bank's, opened from our quote of its offer ``offer_ref`` (what its webhooks name)."""
    quote_id = str(uuid.uuid4())
    with database.unit_of_work() as uow:
        loan = uow.session.get(LoanRow, loan_id)
        assert loan is not None
        borrower_id, borrower = loan.borrower_id, str(loan.borrower_address)
    add_quote(
        database, borrower_address=borrower, borrower_id=borrower_id, offer_digest="0x" + uuid.uuid4().hex * 2,
        provider_id="sim-bank", chain_name=chain.name, chain_id=chain.chain_id,
        contract=chain.record.address("CreditAggregator"), offer={"providerRef": offer_ref}, quote_id=quote_id, **quote,
    )  # fmt: skip
    with database.unit_of_work() as uow:
        row = uow.session.get(LoanRow, loan_id)
        assert row is not None
        row.quote_id, row.provider_id = quote_id, "sim-bank"
        uow.commit()


def _payments(chain: DeployedChain, database: Database, operator: TransactionManager) -> OffchainPayments:
    """The platform's off-chain payments with the chain's deployment record naming ``chain``'s deployment."""
    runtime = ChainRuntime(operator.client, chain.record, operator, senders={Role.OPERATOR: operator})
    assets = AssetRegistry([Asset("USDC", 6, Decimal(1), {chain.name: Harness(chain).usdc.address})])
    stores = SqlLoanStore(database), SqlPaymentStore(database)
    return OffchainPayments(*stores, {chain.name: runtime}, assets, LedgerReceipts(database), wait_seconds=60)


async def test_the_new_deployments_loan_is_paid_its_own_payments_under_a_reused_reference(
    deployments: tuple[DeployedChain, DeployedChain], servicing_db: Database, operator: TransactionManager
) -> None:
    """sim-bank reports "pay-1" and "pay-2" for each of its loans. The earlier deployment's loan N was paid 300 under
    "pay-1"; after the switch the new deployment's loan N's "pay-1" (its first installment) found that payment and
    its intent (an IntentConflict: 503 for ever, nothing sent), and the earlier loan's 300 counted towards the new
    loan's disclosed total (1,000.50), so its second payment was sent as paying it in full and the loan closed."""
    old, new = deployments
    old_ref, old_id = _one_day_loan(old, servicing_db, pool=False)
    new_ref, new_id = _one_day_loan(new, servicing_db, pool=False)
    assert old_ref == new_ref
    _lenders_loan(old, servicing_db, old_id, "old-offer")
    _lenders_loan(new, servicing_db, new_id, "new-offer", disclosure=SCHEDULE)
    earlier = await _payments(old, servicing_db, operator).record("sim-bank", "old-offer", "pay-1", "300.00")

    payments = _payments(new, servicing_db, operator)  # the deployment record names the new deployment
    first = await payments.record("sim-bank", "new-offer", "pay-1", "400.00")
    second = await payments.record("sim-bank", "new-offer", "pay-2", "500.00")  # 900: short of 1,000.50

    assert first.status == second.status == "confirmed"
    assert len({earlier.tx_hash, first.tx_hash, second.tx_hash}) == 3
    assert (first.interest_paid + first.principal_paid, second.interest_paid + second.principal_paid) == (
        400 * USDC,
        500 * USDC,
    ), "each sent as reported"
    assert not second.closed
    on_chain = Harness(new).loan(new_ref)
    assert (on_chain["status"], on_chain["outstandingPrincipal"] > 0) == (1, True)  # Active: the rest is owed
    assert earlier.interest_paid + earlier.principal_paid == 300 * USDC
    assert Harness(old).loan(old_ref)["outstandingPrincipal"] == 1_000 * USDC - earlier.principal_paid
    aggregator = new.record.address("CreditAggregator")
    intent = await operator.store.get_intent(
        record_intent_key(new.chain_id, aggregator, new_ref, payment_ref_hash("sim-bank", "pay-1"))
    )
    assert intent is not None
    assert (intent.to_address, intent.tx_hash) == (aggregator, first.tx_hash)
