"""A transaction re-mined in a lower block after a reorg, on the SQL ledger (SQLite and PostgreSQL): the fact its
receipt recorded at the old block lies outside the indexer's range and is found by its transaction hash
(``ix_chain_facts_tx``); the loan counts the repayment once, and its event stands (the new fact makes it again)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from chain.events import EventBatch
from store.aggregator import LoanRow
from store.db import Database
from store.ledger import SOURCE_RECEIPT, ChainFactRow, LoanRepaymentRow
from store.loan_ledger import apply_batch, apply_events, apply_in_own_unit
from store.outbox import OutboxEventRow
from tests.support.databases import migrated
from tests.support.ledger_facts import CHAIN, LoanFacts

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with migrated(request, tmp_path, "ledger_re_mined") as db:
        yield db


def test_a_repayment_re_mined_one_block_lower_counts_once(database: Database) -> None:
    facts = LoanFacts(loan_ref=9_101)
    facts.quoted_by(database, "sim-bank")
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, [facts.opened()])
        uow.commit()
    facts.block += 5  # blocks without our events between the opening and the repayment
    by_receipt = facts.repaid(10, 300_000_000, 700_000_000)
    apply_in_own_unit(database, CHAIN, [by_receipt], source=SOURCE_RECEIPT)

    lower = by_receipt.block_number - 1
    again = replace(by_receipt, block_number=lower, block_hash="0x" + "ab" * 32)
    with database.unit_of_work() as uow:
        apply_batch(
            uow.session, CHAIN, EventBatch(CHAIN.chain_id, lower, lower, (again,), None, {lower: again.block_hash})
        )
        uow.commit()

    with database.unit_of_work() as uow:
        loan = uow.session.get_one(LoanRow, facts.loan_id)
        assert (loan.principal_paid, loan.interest_paid, loan.outstanding_principal) == (300_000_000, 10, 700_000_000)
        entries = uow.session.scalar(select(func.count()).where(LoanRepaymentRow.loan_id == loan.id))
        assert entries == 1
        hashes = uow.session.scalars(select(ChainFactRow.block_hash).where(ChainFactRow.tx_hash == by_receipt.tx_hash))
        assert list(hashes) == [again.block_hash]
        events = uow.session.scalars(select(OutboxEventRow.event_type).where(OutboxEventRow.loan_id == loan.id))
        assert sorted(events) == ["loan.opened", "loan.repayment"], "one repayment event, not retracted"
