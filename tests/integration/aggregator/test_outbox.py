"""The transactional outbox on real PostgreSQL: the ledger writes each loan event in the transaction of its change
(none when it rolls back, none twice when a fact is applied again), numbered 1, 2, 3 … per loan with no gap even
when writers of one loan race; ``append`` with a key writes once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select

from aggregator import outbox
from chain.events import ChainEvent
from store.aggregator import LoanRow
from store.db import Database
from store.loan_ledger import apply_events
from store.outbox import OutboxEventRow, SqlOutboxRepository, SqlOutboxStore
from tests.support.ledger_facts import CHAIN, LoanFacts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema("outbox_test"))
    db.migrate()
    yield db
    db.dispose()


def _events(database: Database, loan_id: str) -> list[OutboxEventRow]:
    with database.unit_of_work() as uow:
        return SqlOutboxRepository(uow.session).events(loan_id)


def _apply(database: Database, events: list[ChainEvent]) -> None:
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, events)
        uow.commit()


def test_ledger_changes_write_their_events_once_in_order(database: Database) -> None:
    chain = LoanFacts(loan_ref=7_001)
    opened, repaid = chain.opened(), chain.repaid(1_234, 400_000_000, 600_000_000)
    _apply(database, [opened])
    _apply(database, [repaid])
    loan_id = chain.loan_id
    closing = [chain.repaid(2_000, 600_000_000, 0), chain.closed()]
    _apply(database, closing)
    _apply(database, [opened, repaid, *closing])  # the indexer delivers what a receipt already recorded

    events = _events(database, loan_id)
    assert [(e.sequence, e.event_type) for e in events] == [
        (1, "loan.opened"),
        (2, "loan.repayment"),
        (3, "loan.repayment"),
        (4, "loan.closed"),
    ]
    assert len({e.id for e in events}) == 4
    first = events[1].body
    assert first["event_id"] == events[1].id
    assert first["sequence"] == 2
    assert first["type"] == "loan.repayment"
    assert first["data"]["principal_paid"] == "400000000"
    assert first["data"]["interest_paid"] == "1234"
    assert first["data"]["tx_hash"] == repaid.tx_hash
    assert first["loan"]["outstanding_principal"] == "600000000"
    assert first["loan"]["status"] == "active"
    assert events[0].body["loan"]["principal"] == "1000000000"
    assert events[0].body["data"]["rate_bps"] == 900
    assert events[3].body["data"]["outcome"] == "repaid"
    assert events[3].body["loan"]["status"] == "repaid"


def test_a_rolled_back_ledger_change_leaves_no_event(database: Database) -> None:
    chain = LoanFacts(loan_ref=7_002)
    _apply(database, [chain.opened()])
    loan_id = chain.loan_id
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, [chain.event("LoanDefaulted", outstandingPrincipal=1, accruedInterest=2)])
        assert uow.session.scalar(select(func.count(OutboxEventRow.id)).where(OutboxEventRow.loan_id == loan_id)) == 2
    # left without commit: rolled back with the ledger change
    assert [e.event_type for e in _events(database, loan_id)] == ["loan.opened"]
    with database.unit_of_work() as uow:
        loan = uow.session.get(LoanRow, loan_id)
        assert loan is not None
        assert loan.status == "active"


def test_append_with_a_key_writes_once_and_refuses_unknown_types(database: Database) -> None:
    chain = LoanFacts(loan_ref=7_003)
    _apply(database, [chain.opened()])
    loan_id = chain.loan_id
    ids = []
    for _ in range(2):
        with database.unit_of_work() as uow:
            loan = uow.session.get(LoanRow, loan_id)
            assert loan is not None
            ids.append(
                outbox.append(
                    SqlOutboxStore(uow.session),
                    loan_id=loan.id,
                    event_type="loan.past_due",
                    payload={"bucket": "1-29"},
                    key="1",
                )
            )
            uow.commit()
    assert ids[0] == ids[1]
    with database.unit_of_work() as uow:
        loan = uow.session.get(LoanRow, loan_id)
        assert loan is not None
        with pytest.raises(outbox.OutboxError):
            outbox.append(SqlOutboxStore(uow.session), loan_id=loan.id, event_type="loan.renamed", payload={})
    written = [(e.sequence, e.event_type) for e in _events(database, loan_id)]
    assert written == [(1, "loan.opened"), (2, "loan.past_due")]


def test_racing_writers_of_one_loan_number_its_events_without_gaps(database: Database) -> None:
    chain = LoanFacts(loan_ref=7_004)
    _apply(database, [chain.opened()])
    loan_id = chain.loan_id
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(5):
                with database.unit_of_work() as uow:
                    loan = uow.session.get(LoanRow, loan_id)
                    assert loan is not None
                    events = SqlOutboxStore(uow.session)
                    outbox.append(events, loan_id=loan.id, event_type="loan.past_due", payload={}, key=f"{n}:{i}")
                    uow.commit()
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [e.sequence for e in _events(database, loan_id)] == list(range(1, 42))
