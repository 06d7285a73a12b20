"""The lenders' payment records, one conformance test for both implementations of ``PaymentStore``: the SQL one (on
real PostgreSQL and SQLite, with the loans its foreign key names) and the in-memory fake the unit tests use. The
first report of a (loan, reference) stands, a settlement changes only its own record, a unit of work left without
its commit keeps nothing, a deployment's records come back in the order they were accepted, a loan's payments are
its own and not another deployment's loan of the same number, and a loan's reported payments are dated by the
webhook that first reported each (its ``occurred_at``), else by when they were accepted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from aggregator.loans import LoanRecord
from aggregator.payment_records import ACCEPTED, RECORDED, REFUSED, InMemoryPaymentStore, PaymentStore, ReportedPayment
from aggregator.servicing.delinquency import Payment
from store.aggregator import LoanRow
from store.db import Database
from store.loans import loan_columns
from store.payments import SqlPaymentStore
from store.providers import ProviderWebhookEventRow
from tests.support.relay_fakes import AGGREGATOR, CHAIN_ID, LOAN

pytestmark = pytest.mark.integration

#: each SQL store's database, for what the webhook side writes (``provider_webhook_events``)
_DATABASES: dict[int, Database] = {}
#: an earlier deployment's CreditAggregator on the chain
EARLIER = "0x" + "a1" * 20


def _loan(loan_id: str, number: int, contract: str = AGGREGATOR, chain_id: int = CHAIN_ID) -> LoanRecord:
    digest = "0x" + uuid.uuid5(uuid.NAMESPACE_URL, loan_id).hex * 2
    return replace(LOAN, id=loan_id, chain_id=chain_id, contract=contract, onchain_loan_id=number, offer_digest=digest)


#: the loans of the module's tests, each test's its own: two chains, and two deployments' loan 9 on one chain
LOANS = {
    "l1": _loan("l1", 9, EARLIER),
    "elsewhere": _loan("elsewhere", 9, chain_id=CHAIN_ID + 1),
    "unsaved": _loan("unsaved", 10),
    "dated": _loan("dated", 11),
    "l1-new": _loan("l1-new", 9),
    "payoff": _loan("payoff", 12),
    "redecided": _loan("redecided", 13),
}
FIRST = ReportedPayment("sim-bank", "pay-1", "0x" + "01" * 32, "l1", CHAIN_ID, EARLIER, 9, 25, "evt-1")
SECOND = replace(FIRST, payment_ref="pay-2", reference="0x" + "02" * 32, amount=5, event_id="evt-2")
ELSEWHERE = replace(FIRST, loan_id="elsewhere", chain_id=CHAIN_ID + 1, contract=AGGREGATOR)


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
        uow.session.add_all(LoanRow(**loan_columns(loan)) for loan in LOANS.values())
        uow.commit()
    store = SqlPaymentStore(database)
    _DATABASES[id(store)] = database
    yield store
    database.dispose()


def _chain(store: PaymentStore, chain_id: int = CHAIN_ID, aggregator: str = EARLIER) -> list[ReportedPayment]:
    with store.unit_of_work() as uow:
        return uow.payments.for_aggregator(chain_id, aggregator)


def test_the_first_report_stands_and_each_settles_alone(store: PaymentStore) -> None:
    with store.unit_of_work() as uow:
        uow.payments.accept(FIRST)
        uow.payments.accept(replace(FIRST, amount=999, event_id="evt-again"))  # the same reference reported again
        uow.payments.accept(SECOND)
        uow.payments.accept(ELSEWHERE)
        uow.commit()
    assert _chain(store) == [FIRST, SECOND]
    assert _chain(store, CHAIN_ID + 1, AGGREGATOR.lower()) == [ELSEWHERE]

    with store.unit_of_work() as uow:
        uow.payments.settle("l1", FIRST.reference, RECORDED, "0x" + "aa" * 32, 70)
        uow.payments.settle("l1", SECOND.reference, REFUSED, None, None)
        uow.commit()
    assert _chain(store) == [
        replace(FIRST, status=RECORDED, tx_hash="0x" + "aa" * 32, block_number=70),
        replace(SECOND, status=REFUSED),
    ]
    assert [p.status for p in _chain(store, CHAIN_ID + 1, AGGREGATOR)] == [ACCEPTED]


def test_a_new_deployments_loan_of_the_same_number_has_payments_of_its_own(store: PaymentStore) -> None:
    """The new deployment's loan 9 and its lender's reference ``pay-1`` reused: before, keyed by (chain, loan
    number, reference), it was the earlier deployment's loan 9's payment (the new one never kept), and the new loan's
    payments counted the earlier one's towards its disclosed total."""
    new = replace(FIRST, loan_id="l1-new", contract=AGGREGATOR, amount=40, event_id="evt-new")
    with store.unit_of_work() as uow:
        uow.payments.accept(FIRST)  # the earlier deployment's loan 9 (kept there already by the test above)
        kept = uow.payments.accept(new)
        assert (kept, uow.payments.kept("l1-new", FIRST.reference)) == (new, new)
        assert [p.amount for p in uow.payments.reported("l1-new")] == [40]
        uow.commit()
    assert _chain(store, CHAIN_ID, AGGREGATOR) == [new]
    assert {p.loan_id for p in _chain(store)} == {"l1"}, "the earlier deployment's are its loan 9's only"


def test_a_unit_of_work_left_without_its_commit_keeps_nothing(store: PaymentStore) -> None:
    unsaved = replace(FIRST, loan_id="unsaved", contract=AGGREGATOR, onchain_loan_id=10)
    with store.unit_of_work() as uow:
        uow.payments.accept(unsaved)
        assert uow.payments.kept("unsaved", FIRST.reference) == unsaved  # seen inside its own unit of work
    with store.unit_of_work() as uow:
        assert uow.payments.kept("unsaved", FIRST.reference) is None


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
    paid = datetime(2027, 1, 1, 23, 59, 59, tzinfo=UTC)
    _webhook(store, "sim-bank", "evt-dated-1", paid)
    _webhook(store, "other-bank", "evt-dated-2", datetime(2020, 1, 1, tzinfo=UTC))  # another lender's event id
    one, two = (replace(p, loan_id="dated", contract=AGGREGATOR, onchain_loan_id=11) for p in (FIRST, SECOND))
    dated = replace(one, event_id="evt-dated-1")
    undated = replace(two, event_id="evt-dated-2")
    refused = replace(two, reference="0x" + "03" * 32, event_id=None)
    before = int(datetime.now(UTC).timestamp())
    with store.unit_of_work() as uow:
        for payment in (dated, undated, refused):
            uow.payments.accept(payment)
        uow.payments.settle("dated", refused.reference, REFUSED, None, None)
        uow.commit()
    with store.unit_of_work() as uow:
        first, second = uow.payments.reported("dated")
    assert first == Payment(int(paid.timestamp()), 25), "its webhook's occurred_at"
    assert second.amount == 5
    assert before - 1 <= second.at <= int(datetime.now(UTC).timestamp()) + 1, "no webhook of its lender: accepted"


def test_a_payoff_keeps_its_decision_and_the_amount_of_its_latest_attempt(store: PaymentStore) -> None:
    """``closes_loan`` is kept with the first report; ``send_as`` keeps the amount each new attempt is sent with."""
    payoff = replace(
        FIRST, loan_id="payoff", contract=AGGREGATOR, onchain_loan_id=12, recorded_amount=30, closes_loan=True
    )
    with store.unit_of_work() as uow:
        uow.payments.accept(payoff)
        uow.commit()
    with store.unit_of_work() as uow:
        uow.payments.send_as("payoff", FIRST.reference, 31)
        uow.commit()
    with store.unit_of_work() as uow:
        kept = uow.payments.kept("payoff", FIRST.reference)
    assert kept == replace(payoff, recorded_amount=31)
    assert (kept.closes_loan, kept.sent_amount) == (True, 31)


def test_a_payment_decided_again_reads_the_payments_through_it_and_is_kept_closing(store: PaymentStore) -> None:
    """A payment kept accepted as not closing the loan, no attempt of it taken, is decided again on its retry
    (``aggregator.offchain_payments``): by the loan's payments up to it (``through``), then kept as closing it."""
    one, two, three = (
        replace(p, loan_id="redecided", contract=AGGREGATOR, onchain_loan_id=13, event_id=None)
        for p in (FIRST, SECOND, replace(SECOND, reference="0x" + "04" * 32, amount=7))
    )
    with store.unit_of_work() as uow:
        for payment in (one, two, three):
            uow.payments.accept(payment)
        uow.commit()
    with store.unit_of_work() as uow:
        assert [p.amount for p in uow.payments.reported("redecided", through=two.reference)] == [25, 5]
        assert [p.amount for p in uow.payments.reported("redecided", through=one.reference)] == [25]
        assert [p.amount for p in uow.payments.reported("redecided")] == [25, 5, 7]
        uow.payments.closes("redecided", two.reference)
        uow.commit()
    with store.unit_of_work() as uow:
        kept = [uow.payments.kept("redecided", p.reference) for p in (one, two, three)]
    assert [p.closes_loan for p in kept if p is not None] == [False, True, False]
