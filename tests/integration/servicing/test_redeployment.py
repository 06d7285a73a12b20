"""A second deployment of the contract set on a chain (contracts are not upgradeable: a new version is a new
deployment) numbers its loans from 1 again. Its loan 1 is serviced as its own: marked in default and liquidated
although loan 1 of the first deployment was marked in default and liquidated before — the operator's and the
keeper's intents name the contract they call, so the first deployment's intents do not stand for the second's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import func
from web3 import Web3

from aggregator.ledger import DEFAULTED
from aggregator.servicing.defaults import DefaultJob, default_intent_key
from aggregator.servicing.delinquency import SECONDS_PER_DAY
from aggregator.servicing.keeper import Keeper, liquidation_intent_key
from chain.client import ChainClient
from chain.config import LOCAL_CHAINS
from chain.devnet import start_devnet
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Role, devnet_signer
from chain.transactions import TransactionManager
from contracts.deploy import deploy_to_devnet
from store.aggregator import LoanRow
from store.chain import SqlChainStore
from store.db import Database
from tests.contracts.harness import USDC, WETH, Harness
from tests.integration.servicing.conftest import record_in_ledger
from tests.support.devnet import DeployedChain

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


def _one_day_loan(chain: DeployedChain, database: Database) -> tuple[int, str]:
    """A one-day pool loan on ``chain``'s deployment, in the ledger: its on-chain id and ledger id."""
    harness = Harness(chain)
    harness.set_weth_price(3_000)
    borrower: LocalAccount = Account.create()
    harness.impersonate(borrower.address)
    harness.fund(borrower.address, weth=WETH)
    harness.approve_all(borrower.address)
    loan_ref, receipt = harness.open_loan(borrower, principal=1_000 * USDC, originationFee=0, term=SECONDS_PER_DAY)
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
