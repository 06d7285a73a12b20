"""Two transactions applying two facts of one loan at once on PostgreSQL (the indexer's and a receipt's, or two
receipts'): the loan is read FOR UPDATE, so the second waits for the first and adds to what it wrote. Read without
a lock, both added to the same old totals and one repayment's amounts were lost for good (the facts stood, so no
later read repaired the loan). A fact older than one the other transaction applied, waiting for it, finds that fact
once it holds the loan, and the loan is replayed in chain order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select

from store.aggregator import LoanRow
from store.db import Database
from store.ledger import SOURCE_RECEIPT, LoanRepaymentRow
from store.loan_ledger import apply_events, apply_in_own_unit
from store.outbox import OutboxEventRow
from tests.support.ledger_facts import CHAIN, LoanFacts

pytestmark = pytest.mark.integration


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema("ledger_concurrent_facts"))
    db.migrate()
    yield db
    db.dispose()


def test_two_facts_of_one_loan_applied_at_once_both_count(database: Database) -> None:
    facts = LoanFacts(loan_ref=9_001)
    facts.quoted_by(database, "sim-bank")
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, [facts.opened()])
        uow.commit()
    by_indexer = facts.repaid(10, 300_000_000, 700_000_000)  # a borrower's own repay, read from the logs
    by_receipt = facts.repaid(5, 200_000_000, 500_000_000)  # a relayed repayment, applied from its receipt

    failed: list[BaseException] = []
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, [by_indexer])  # the indexer's transaction, not committed yet

        def receipt() -> None:
            try:
                apply_in_own_unit(database, CHAIN, [by_receipt], source=SOURCE_RECEIPT)
            except BaseException as err:
                failed.append(err)

        other = threading.Thread(target=receipt)
        other.start()
        time.sleep(1.0)  # the receipt's transaction reads the loan meanwhile
        uow.commit()
    other.join(30)
    assert not other.is_alive()
    assert failed == []
    with database.unit_of_work() as uow:
        loan = uow.session.get_one(LoanRow, facts.loan_id)
        entries = uow.session.scalar(select(func.count()).where(LoanRepaymentRow.loan_id == loan.id))
        assert entries == 2
        assert (loan.principal_paid, loan.interest_paid) == (500_000_000, 15)
        assert loan.outstanding_principal == 500_000_000


def test_an_older_fact_applied_while_a_later_ones_transaction_holds_the_loan_is_replayed_in_chain_order(
    database: Database,
) -> None:
    """The receipt of the repayment that closed the loan is applied (not committed yet) while the indexer applies
    the ``markDefault`` of an earlier block: the indexer's transaction waits for the loan, then must see the
    repayment's facts — read before the loan was, they were not there, and the default went on top of the closing."""
    facts = LoanFacts(loan_ref=9_002)
    facts.quoted_by(database, "sim-bank")
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, [facts.opened()])
        uow.commit()
    default = facts.event("LoanDefaulted", outstandingPrincipal=1_000_000_000, accruedInterest=50)
    repaid, closed = facts.repaid(50, 1_000_000_000, 0), facts.closed()

    failed: list[BaseException] = []
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, [repaid, closed], source=SOURCE_RECEIPT)  # holds the loan, not committed

        def indexer() -> None:
            try:
                apply_in_own_unit(database, CHAIN, [default], source="indexer")
            except BaseException as err:
                failed.append(err)

        other = threading.Thread(target=indexer)
        other.start()
        time.sleep(1.0)  # the indexer's transaction records its fact and waits for the loan meanwhile
        uow.commit()
    other.join(30)
    assert not other.is_alive()
    assert failed == []
    with database.unit_of_work() as uow:
        loan = uow.session.get_one(LoanRow, facts.loan_id)
        assert (loan.status, loan.outstanding_principal, loan.principal_paid) == ("repaid", 0, 1_000_000_000)
        told = uow.session.scalars(
            select(OutboxEventRow.event_type).where(OutboxEventRow.loan_id == loan.id).order_by(OutboxEventRow.sequence)
        )
        assert list(told) == ["loan.opened", "loan.repayment", "loan.closed"]
