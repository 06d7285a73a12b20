"""One loan the keeper or the default job cannot read or price does not stop the chain's servicing: among good loans,
one whose ledger row holds ``'1.5e9'`` in a uint256 column and one whose asset is an address with no code are
skipped, said once (not every round) and counted, and the good loan is served in the same round. Before (fixed
2026-11-29) the first crash-looped both jobs and the second failed every keeper round of its chain."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import column as sql_column
from sqlalchemy import select, table, update

from aggregator.servicing.defaults import DefaultJob
from aggregator.servicing.keeper import Keeper, KeeperSettings
from chain.client import ChainClient
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Role, devnet_signer
from chain.transactions import TransactionManager
from store.aggregator import LoanRow
from store.chain import SqlChainStore
from store.db import Database
from tests.contracts.harness import Harness
from tests.integration.servicing.test_keeper import _open_loan as open_keeper_loan
from tests.support.devnet import DeployedChain

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

NO_CODE = "0x000000000000000000000000000000000000dEaD"


def _open_loan(harness: Harness, database: Database) -> tuple[int, str]:
    """A fresh borrower's loan of 5,000 USDC against 3 WETH, in the ledger (``test_keeper``'s): its on-chain id and
    ledger id."""
    loan_ref = open_keeper_loan(harness, database)
    with database.unit_of_work() as uow:
        loan_id = uow.session.scalars(select(LoanRow.id).where(LoanRow.onchain_loan_id == loan_ref)).one()
    return loan_ref, loan_id


def _spoil(database: Database, loan_id: str, column: str, value: str) -> None:
    """Write ``value`` into the loan's row around the application, as an admin's SQL would."""
    with database.unit_of_work() as uow:
        loans = table("loans", sql_column("id"), sql_column(column))  # untyped: the value goes in as it is
        uow.session.execute(update(loans).where(loans.c.id == loan_id).values({column: value}))
        uow.commit()


def _gauge(job: str, chain_id: int) -> float | None:
    labels = {"chain": str(chain_id), "job": job}
    return REGISTRY.get_sample_value("creditmesh_servicing_unserviceable_loans", labels)


@pytest.fixture
async def keeper(own_chain: DeployedChain, servicing_db: Database) -> AsyncIterator[Keeper]:
    client = await ChainClient(own_chain.config).connect()
    store = SqlChainStore(servicing_db.sessions)
    keeper_key = devnet_signer(Role.KEEPER)
    transactions = await TransactionManager(client, keeper_key, store, revert_artifacts=REVERT_ARTIFACTS).start()
    settings = KeeperSettings(ttl=timedelta(seconds=3), interval=0.2)
    yield Keeper(client, own_chain.record, servicing_db, transactions, holder="unserviceable", settings=settings)
    await transactions.close()
    await client.close()


async def test_the_keeper_liquidates_the_good_loan_and_says_each_bad_one_once(
    own_chain: DeployedChain, servicing_db: Database, keeper: Keeper, caplog: pytest.LogCaptureFixture
) -> None:
    harness = Harness(own_chain)
    harness.set_weth_price(3_000)
    good, good_id = _open_loan(harness, servicing_db)
    no_code, no_code_id = _open_loan(harness, servicing_db)
    unreadable, unreadable_id = _open_loan(harness, servicing_db)
    _spoil(servicing_db, no_code_id, "asset_address", NO_CODE)
    _spoil(servicing_db, unreadable_id, "outstanding_principal", "1.5e9")
    harness.set_weth_price(2_000)  # every one of them under water: health 0.99
    try:
        with caplog.at_level(logging.ERROR, logger="aggregator.servicing.keeper"):
            first = await keeper.run_round()
            second = await keeper.run_round()
    finally:
        harness.set_weth_price(3_000)
        for loan_id in (good_id, no_code_id, unreadable_id):  # out of this module's next worklists
            _spoil(servicing_db, loan_id, "status", "repaid")
    assert [(sent.loan_ref, sent.action) for sent in first.sent] == [(good, "liquidate")]
    assert "debt asset 0x000000000000000000000000000000000000dead answers no balance" in first.skipped[no_code]
    assert "'1.5e9' is stored where a uint256 belongs" in first.unserviceable[unreadable_id]
    assert set(first.unserviceable) == {no_code_id, unreadable_id} == set(second.unserviceable)
    said = [record.getMessage() for record in caplog.records if "skipped" in record.getMessage()]
    assert len(said) == 2, said  # once per loan, not once per round
    assert any(no_code_id in message and NO_CODE.lower() in message for message in said)
    assert any(unreadable_id in message and f"on-chain id {unreadable}" in message for message in said)
    assert _gauge("keeper", own_chain.chain_id) == 2


async def test_the_default_job_serves_the_good_loans_past_one_it_cannot_read(
    own_chain: DeployedChain, servicing_db: Database, job: DefaultJob, caplog: pytest.LogCaptureFixture
) -> None:
    harness = Harness(own_chain)
    harness.set_weth_price(3_000)
    good, good_id = _open_loan(harness, servicing_db)
    _, unreadable_id = _open_loan(harness, servicing_db)
    _spoil(servicing_db, unreadable_id, "principal", "1.5e9")
    _spoil(servicing_db, unreadable_id, "outstanding_principal", "1.5e9")
    try:
        with caplog.at_level(logging.ERROR, logger="aggregator.servicing.defaults"):
            first = await job.run_round()
            second = await job.run_round()
    finally:
        for loan_id in (good_id, unreadable_id):
            _spoil(servicing_db, loan_id, "status", "repaid")
    assert good in first.buckets
    assert good in second.buckets
    assert set(first.unserviceable) == {unreadable_id} == set(second.unserviceable)
    said = [record.getMessage() for record in caplog.records if unreadable_id in record.getMessage()]
    assert len(said) == 1, said  # once, not once per round
    assert "'1.5e9'" in said[0]
    assert _gauge("defaulter", own_chain.chain_id) == 1
