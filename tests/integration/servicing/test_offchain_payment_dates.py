"""A lender's payments dated as the closing rule dates them, on the package's own devnet with its ledger on
PostgreSQL: three traditional loans of 1,500 USDC for 30 days at 9%, opened at 09:00, their single disclosed payment
reported by the lender (``payment.received``) and recorded by the operator (``recordOffchainRepayment``) as reported,
leaving the chain's few cents of interest past the maturity second owed. Eight days past the due date — past the
maturity plus the seven days' grace — the default job and the loans API judge each by when its lender said it was
paid (``occurred_at``, as ``aggregator.offchain_payments``' closing rule does), never later than its record's block:

* paid at 15:00 on the due date, reported and recorded at 10:00 the next day: paid as disclosed — current, neither
  announced past due nor marked in default. Before, servicing dated it by its block: a day late, announced ``1-29``
  and marked in default, while the closing rule had judged the same payment on time;
* paid and recorded at 10:00 the next day: late, as before — past due and marked in default;
* recorded at 15:00 on the due date, its lender saying 02:00 the next day (local time sent without an offset): a
  payment is not made after the chain recorded it, so it is dated by its block — on time."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from aggregator.installments import DueInstallment, schedule_from_disclosure
from aggregator.loans import LoanScope, LoanService
from aggregator.offchain_payments import payment_ref_hash
from aggregator.payment_records import RECORDED, ReportedPayment
from aggregator.platform import ChainRuntime
from aggregator.servicing.defaults import DefaultJob
from aggregator.servicing.delinquency import Bucket
from compliance import LoanTerms
from compliance.tila.disclosure import disclose
from store.aggregator import LoanRow
from store.db import Database
from store.loans import SqlLoanStore, loan_record
from store.outbox import OutboxEventRow
from store.payments import SqlPaymentRecords
from store.providers import ProviderWebhookEventRow
from tests.contracts.harness import OPERATOR, RELAYER, USDC, WETH, Harness
from tests.integration.servicing.conftest import record_in_ledger
from tests.support.devnet import DeployedChain
from tests.support.ledger_facts import add_quote

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ACTIVE, DEFAULTED = 1, 3  # LoanStatus
LENDER = "sim-bank"


@dataclass(frozen=True, slots=True)
class Opened:
    ref: int
    loan_id: str
    payment: DueInstallment


def _at_hour(day: date, hour: int) -> int:
    return int(datetime.combine(day, datetime.min.time(), UTC).timestamp()) + hour * 3_600


def _open_traditional_loan(harness: Harness, database: Database) -> Opened:
    """1,500 USDC of sim-bank's for 30 days at 9%, disclosed by ``compliance.disclose`` from the opening's time."""
    start = datetime.fromtimestamp(harness.now(), UTC)
    disclosure = json.loads(
        disclose(LoanTerms(Decimal("1500.00"), "USDC", 6, 900, 30, Decimal(0), start)).to_canonical_json()
    )
    (payment,) = schedule_from_disclosure(disclosure)
    borrower: LocalAccount = Account.create()
    harness.impersonate(borrower.address)
    harness.fund(borrower.address, weth=WETH)
    harness.approve_all(borrower.address)
    offer = harness.offer(borrower.address, pool=False, principal=1_500 * USDC, originationFee=0,
                          term=30 * 86_400, rateBps=900)  # fmt: skip
    digest = "0x" + harness.aggregator.functions.offerDigest(offer.as_abi_tuple()).call().hex()
    receipt = harness.send(harness.aggregator.functions.openLoan(*harness.open_args(offer, borrower.key)), RELAYER)
    add_quote(database, borrower_address=borrower.address, offer_digest=digest, provider_id=LENDER,
              chain_name=harness.chain.name, chain_id=harness.chain.chain_id, contract=harness.aggregator.address,
              disclosure=disclosure)  # fmt: skip
    record_in_ledger(database, harness.chain, receipt)
    with database.unit_of_work() as uow:
        loan = uow.session.scalars(select(LoanRow).where(LoanRow.offer_digest == digest)).one()
        return Opened(int(loan.onchain_loan_id or 0), loan.id, payment)


def _lender_reports(harness: Harness, database: Database, loan: Opened, occurred_at: str) -> None:
    """The lender's ``payment.received`` of the disclosed amount, made at ``occurred_at`` (as the lender sends it),
    kept as the webhook and the payment the platform accepts, and recorded on-chain by the operator now."""
    payment_ref, event_id = f"wire-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    reference = payment_ref_hash(LENDER, payment_ref)
    now = datetime.now(UTC)
    with database.unit_of_work() as uow:
        uow.session.add(ProviderWebhookEventRow(
            provider_id=LENDER, event_id=event_id, event_type="payment.received", offer_ref=f"offer-{loan.ref}",
            payload={"payment_ref": payment_ref, "amount": str(loan.payment.amount), "occurred_at": occurred_at},
            received_at=now,
        ))  # fmt: skip
        uow.session.flush()
        SqlPaymentRecords(uow.session).accept(ReportedPayment(
            LENDER, payment_ref, "0x" + reference.hex(), loan.loan_id, harness.chain.chain_id,
            harness.aggregator.address, loan.ref, loan.payment.amount, event_id,
        ))  # fmt: skip
        uow.commit()
    call = harness.aggregator.functions.recordOffchainRepayment(loan.ref, loan.payment.amount, reference)
    receipt = harness.send(call, OPERATOR)
    record_in_ledger(database, harness.chain, receipt)
    with database.unit_of_work() as uow:
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        SqlPaymentRecords(uow.session).settle(loan.loan_id, "0x" + reference.hex(), RECORDED, tx_hash,
                                              receipt["blockNumber"])  # fmt: skip
        uow.commit()


def _rfc3339(day: date, hour: int, offset: bool = True) -> str:
    moment = datetime.fromtimestamp(_at_hour(day, hour), UTC)
    return moment.isoformat().replace("+00:00", "Z") if offset else moment.replace(tzinfo=None).isoformat()


async def test_servicing_dates_a_lender_s_payment_as_the_closing_rule_does(
    own_chain: DeployedChain, servicing_db: Database, job: DefaultJob
) -> None:
    harness = Harness(own_chain)
    harness.set_weth_price(3_000)
    open_day = datetime.fromtimestamp(harness.now(), UTC).date() + timedelta(days=2)
    harness.advance(_at_hour(open_day, 9) - harness.now())
    reported_late, late, future_dated = (_open_traditional_loan(harness, servicing_db) for _ in range(3))
    due = reported_late.payment.due
    assert late.payment.due == future_dated.payment.due == due

    harness.advance(_at_hour(due, 15) - harness.now())
    _lender_reports(harness, servicing_db, future_dated, _rfc3339(due + timedelta(days=1), 2, offset=False))
    harness.advance(_at_hour(due + timedelta(days=1), 10) - harness.now())
    _lender_reports(harness, servicing_db, reported_late, _rfc3339(due, 15))  # made on the due date
    _lender_reports(harness, servicing_db, late, _rfc3339(due + timedelta(days=1), 10))
    remainders = {loan.ref: int(harness.loan(loan.ref)["outstandingPrincipal"]) for loan in (reported_late, late)}
    assert all(0 < left < USDC for left in remainders.values()), "the chain's interest past maturity left owed"

    harness.advance(_at_hour(due + timedelta(days=8), 12) - harness.now())  # past maturity plus the grace
    service = LoanService(SqlLoanStore(servicing_db), {own_chain.name: ChainRuntime(job.client, own_chain.record,
                                                                                    job.operator)})  # fmt: skip
    with servicing_db.unit_of_work() as uow:
        rows = [uow.session.get(LoanRow, loan.loan_id) for loan in (reported_late, late, future_dated)]
        listed = await service.delinquencies([loan_record(row) for row in rows if row is not None])
    assert [listed[loan.loan_id].bucket for loan in (reported_late, late, future_dated)] == [
        Bucket.CURRENT, Bucket.DPD_1_29, Bucket.CURRENT
    ]  # fmt: skip
    detailed = [await service.detail(loan.loan_id, LoanScope()) for loan in (reported_late, late, future_dated)]
    assert [detail.live.delinquency.bucket if detail.live else None for detail in detailed] == [
        Bucket.CURRENT, Bucket.DPD_1_29, Bucket.CURRENT
    ], "the loan's own page judges it as the list does"  # fmt: skip

    report = await job.run_round()

    assert report.buckets[reported_late.ref] is Bucket.CURRENT
    assert report.paid_as_disclosed.get(reported_late.ref) == remainders[reported_late.ref]
    assert all(ref != reported_late.ref for ref, _ in report.announced)
    assert reported_late.ref not in report.defaulted
    assert int(harness.loan(reported_late.ref)["status"]) == ACTIVE
    with servicing_db.unit_of_work() as uow:
        events = uow.session.scalars(
            select(OutboxEventRow.event_type).where(OutboxEventRow.loan_id == reported_late.loan_id)
        ).all()
    assert "loan.past_due" not in events
    assert "loan.defaulted" not in events

    assert report.buckets[late.ref] is Bucket.DPD_1_29
    assert (late.ref, Bucket.DPD_1_29) in report.announced
    assert late.ref in report.defaulted
    assert int(harness.loan(late.ref)["status"]) == DEFAULTED

    assert report.buckets[future_dated.ref] is Bucket.CURRENT, "never dated after its record's block"
    assert future_dated.ref not in report.defaulted
