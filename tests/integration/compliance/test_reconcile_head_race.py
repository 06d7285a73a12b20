"""A loan that changes while a run goes on, on a real devnet and PostgreSQL: the run reads the chain first and our
records after, and the indexer may record a repayment in between. The record is then in a later state than the
chain the run read; it was reported as an amount mismatch (stored and audited as a discrepancy). Now a record whose
ledger holds a fact after the run's last block is not judged on its present state (the next run judges it), while a
record that is wrong as of that block still is."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import update

from chain.client import ChainClient
from compliance.reconcile import reconcile_chain
from compliance.reconcile_chain import read_chain
from store.aggregator import LoanRow
from store.db import Database
from store.reconcile import chain_records
from tests.contracts.harness import USDC
from tests.support.devnet import DeployedChain
from tests.support.reconcile import LoanMaker, index

pytestmark = pytest.mark.integration


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema(f"reconcile_race_{os.urandom(3).hex()}"))
    db.migrate()
    yield db
    db.dispose()


async def test_a_repayment_recorded_while_the_run_reads_is_not_a_mismatch(
    database: Database, ethereum_local: DeployedChain
) -> None:
    chain = ethereum_local
    maker = LoanMaker(chain, database)
    start = maker.head() + 1
    repaid, tampered = maker.open(0), maker.open(1)
    await index(chain, database, start)
    with database.unit_of_work() as uow:  # wrong as of any block: still reported
        uow.session.execute(update(LoanRow).where(LoanRow.id == tampered.loan_id).values(status="defaulted"))
        uow.commit()
    client = await ChainClient(chain.config).connect()
    try:
        read = await read_chain(client, chain.record, start)  # the run's read of the chain ends here
        assert read.scope.at_head
        maker.repay(repaid, 2 * USDC)  # a borrower repays while the run goes on
        await index(chain, database, start)  # and the indexer records it before the run reads our records
        with database.unit_of_work() as uow:
            records = chain_records(
                uow.session,
                chain.chain_id,
                chain.record.address("CreditAggregator"),
                chain.record.address("CollateralManager"),
            )
        result = reconcile_chain(read.scope, read.facts(), records, read.code)
    finally:
        await client.close()
    assert [(item.category.value, item.record_ref, item.detail) for item in result.items] == [
        ("status-mismatch", tampered.loan_id, "status: recorded defaulted, on-chain active")
    ]
    (record,) = [r for r in records.loans if r.loan_id == repaid.loan_id]
    assert record.last_fact_block is not None
    assert record.last_fact_block > read.scope.to_block
