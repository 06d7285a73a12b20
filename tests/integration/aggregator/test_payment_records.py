"""The lenders' payment records, one conformance test for both implementations of ``PaymentStore``: the SQL one (on
real PostgreSQL and SQLite, with the loan its foreign key names) and the in-memory fake the unit tests use. The first
report of a (chain, loan, reference) stands, a settlement changes only its own record, a unit of work left without
its commit keeps nothing, a chain's records come back in the order they were accepted, and a loan's reported
payments are dated by the webhook that first reported each (its ``occurred_at``), else by when they were accepted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from aggregator.payment_records import ACCEPTED, RECORDED, REFUSED, InMemoryPaymentStore, PaymentStore, ReportedPayment
from aggregator.servicing.delinquency import Payment
from store.aggregator import LoanRow
from store.db import Database
from store.loans import loan_columns
from store.payments import SqlPaymentStore
from store.providers import ProviderWebhookEventRow
from tests.support.relay_fakes import CHAIN_ID, LOAN

pytestmark = pytest.mark.integration

#: each SQL store's database, for what the webhook side writes (``provider_webhook_events``)
_DATABASES: dict[int, Database] = {}

FIRST = ReportedPayment("sim-bank", "pay-1", "0x" + "01" * 32, LOAN.id, CHAIN_ID, 9, 25, "evt-1")
SECOND = replace(FIRST, payment_ref="pay-2", reference="0x" + "02" * 32, amount=5, event_id="evt-2")
ELSEWHERE = replace(FIRST, chain_id=CHAIN_ID + 1)


@pytest.fixture(scope="module", params=["postgresql", "sqlite", "in-memory"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaymentStore]:
    """One store per implementation for the module (one migration each): the tests keep to chains of their own."""
    if request.param == "in-memory":
        yield InMemoryPaymentStore()
        return
    if request.param == "postgresql":
        database = Database(request.getfixturevalue("postgres_schema")(f"payments_{uuid.uuid4().hex[:8]}"))
    else:
        database = Database(f"sqlite:///{tmp_path_factory.mktemp('payments') / 'payments.db'}")
    database.migrate()
    with database.unit_of_work() as uow:
        uow.session.add(LoanRow(**loan_columns(LOAN)))
        uow.commit()
    store = SqlPaymentStore(database)
    _DATABASES[id(store)] = database
    yield store
    database.dispose()


def _chain(store: PaymentStore, chain_id: int = CHAIN_ID) -> list[ReportedPayment]:
    with store.unit_of_work() as uow:
        return uow.payments.for_chain(chain_id)


def test_the_first_report_stands_and_each_settles_alone(store: PaymentStore) -> None:
    with store.unit_of_work() as uow:
        uow.payments.accept(FIRST)
        uow.payments.accept(replace(FIRST, amount=999, event_id="evt-again"))  # the same reference reported again
        uow.payments.accept(SECOND)
        uow.payments.accept(ELSEWHERE)
        uow.commit()
    assert _chain(store) == [FIRST, SECOND]
    assert _chain(store, CHAIN_ID + 1) == [ELSEWHERE]

    with store.unit_of_work() as uow:
        uow.payments.settle(CHAIN_ID, 9, FIRST.reference, RECORDED, "0x" + "aa" * 32, 70)
        uow.payments.settle(CHAIN_ID, 9, SECOND.reference, REFUSED, None, None)
        uow.commit()
    assert _chain(store) == [
        replace(FIRST, status=RECORDED, tx_hash="0x" + "aa" * 32, block_number=70),
        replace(SECOND, status=REFUSED),
    ]
    assert [p.status for p in _chain(store, CHAIN_ID + 1)] == [ACCEPTED]


def test_a_unit_of_work_left_without_its_commit_keeps_nothing(store: PaymentStore) -> None:
    unsaved = replace(FIRST, chain_id=CHAIN_ID + 2)
    with store.unit_of_work() as uow:
        uow.payments.accept(unsaved)
        assert uow.payments.for_chain(unsaved.chain_id) == [unsaved]  # seen inside its own unit of work
    assert _chain(store, unsaved.chain_id) == []


def _webhook(store: PaymentStore, provider_id: str, event_id: str, occurred_at: datetime) -> None:
    """The webhook that reported a payment, stored as ``providers.webhooks`` stores it (or in the fake's tables)."""
    if isinstance(store, InMemoryPaymentStore):
        store.tables.occurred[(provider_id, event_id)] = occurred_at
        return
    event = {"event_id": event_id, "type": "payment.received", "occurred_at": occurred_at.isoformat()}
    with _DATABASES[id(store)].unit_of_work() as uow:
        uow.session.add(
            ProviderWebhookEventRow(
                provider_id=provider_id,
                event_id=event_id,
                event_type="payment.received",
                offer_ref="offer-1",
                payload=event,
                received_at=datetime.now(UTC),
            )
        )
        uow.commit()


def test_a_loans_reported_payments_are_dated_by_the_webhook_that_reported_each(store: PaymentStore) -> None:
    chain_id = CHAIN_ID + 3
    paid = datetime(2027, 1, 1, 23, 59, 59, tzinfo=UTC)
    _webhook(store, "sim-bank", "evt-dated-1", paid)
    _webhook(store, "other-bank", "evt-dated-2", datetime(2020, 1, 1, tzinfo=UTC))  # another lender's event id
    dated = replace(FIRST, chain_id=chain_id, event_id="evt-dated-1")
    undated = replace(SECOND, chain_id=chain_id, event_id="evt-dated-2")
    refused = replace(SECOND, chain_id=chain_id, reference="0x" + "03" * 32, event_id=None)
    before = int(datetime.now(UTC).timestamp())
    with store.unit_of_work() as uow:
        for payment in (dated, undated, refused):
            uow.payments.accept(payment)
        uow.payments.settle(chain_id, 9, refused.reference, REFUSED, None, None)
        uow.commit()
    with store.unit_of_work() as uow:
        first, second = uow.payments.reported(chain_id, 9)
    assert first == Payment(int(paid.timestamp()), 25), "its webhook's occurred_at"
    assert second.amount == 5
    assert before - 1 <= second.at <= int(datetime.now(UTC).timestamp()) + 1, "no webhook of its lender: accepted"
