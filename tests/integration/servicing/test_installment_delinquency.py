"""An amortizing traditional loan on the package's own devnet, its ledger on real PostgreSQL: a year's term in twelve
monthly installments (the schedule disclosed with its quote); five days after the first installment fell due with
nothing repaid, the loans list, the loan's view and the default job all put it 1–29 days past due by the schedule,
while its maturity is eleven months away. Paid in full on its due date, the same installment leaves the loan current,
though the chain's per-second accrual over a 31-day month credited less principal than the schedule shows. And the last
installment is due all its due date, though the chain's maturity falls at the opening's time of day on it."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from aggregator.installments import schedule_from_disclosure
from aggregator.loans import LoanScope, LoanService
from aggregator.platform import ChainRuntime
from aggregator.servicing.defaults import DefaultJob
from aggregator.servicing.delinquency import SECONDS_PER_DAY, Bucket
from compliance import InstallmentPlan, LoanTerms, installment_term_days
from compliance.tila.disclosure import disclose
from store.aggregator import LoanRow
from store.db import Database
from store.loans import SqlLoanStore, loan_record
from store.outbox import OutboxEventRow
from store.servicing import PastDueNoticeRow
from tests.contracts.harness import OPERATOR, RELAYER, USDC, WETH, Harness
from tests.integration.servicing.conftest import borrower_with_collateral, record_in_ledger
from tests.support.devnet import DeployedChain
from tests.support.ledger_facts import add_quote

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

TERM = 365 * SECONDS_PER_DAY
PRINCIPAL = 1_200 * USDC


def _disclosure(opened: date, first_due_days: int) -> dict[str, object]:
    """Twelve installments of 100 USDC principal plus 9.00 of interest (the first is a month's at 9% a year on
    1,200, counted 30/360), the first due ``first_due_days`` after opening, the others 30 days apart."""
    payments = [
        {
            "number": n,
            "due": (opened + timedelta(days=first_due_days + 30 * (n - 1))).isoformat(),
            "amount": "109.00",
            "principal": "100.00",
            "interest": "9.00",
        }
        for n in range(1, 13)
    ]
    return {"asset": "USDC", "assetDecimals": 6, "payments": payments}


def _quote(database: Database, harness: Harness, borrower: str, digest: str, opened: date, first_due_days: int) -> None:
    add_quote(
        database,
        borrower_address=borrower,
        offer_digest=digest,
        provider_id="sim-bank",
        chain_name=harness.chain.name,
        chain_id=harness.chain.chain_id,
        contract=harness.aggregator.address,
        disclosure=_disclosure(opened, first_due_days),
    )


def _open_amortizing_loan(
    database: Database, chain: DeployedChain, first_due_days: int
) -> tuple[Harness, LoanRow, date]:
    """A 1,200 USDC loan at 9% for a year, quoted by us with the twelve installments of ``_disclosure``."""
    harness, borrower = borrower_with_collateral(chain)
    offer = harness.offer(borrower.address, pool=False, principal=PRINCIPAL, originationFee=0, term=TERM, rateBps=900)
    digest = "0x" + harness.aggregator.functions.offerDigest(offer.as_abi_tuple()).call().hex()
    receipt = harness.send(harness.aggregator.functions.openLoan(*harness.open_args(offer, borrower.key)), RELAYER)
    opened = datetime.fromtimestamp(harness.w3.eth.get_block(receipt["blockNumber"])["timestamp"], UTC).date()
    _quote(database, harness, borrower.address, digest, opened, first_due_days)  # ours, found by the offer's digest
    record_in_ledger(database, chain, receipt)
    with database.unit_of_work() as uow:
        loan = uow.session.scalars(select(LoanRow).where(LoanRow.offer_digest == digest)).one()
        assert loan.quote_id is not None
    return harness, loan, opened


def _at_noon(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), UTC).timestamp()) + SECONDS_PER_DAY // 2


async def test_one_installment_missed_is_1_29_by_the_schedule_while_maturity_is_far(
    own_chain: DeployedChain, servicing_db: Database, job: DefaultJob
) -> None:
    harness, loan, opened = _open_amortizing_loan(servicing_db, own_chain, first_due_days=30)
    loan_ref = int(loan.onchain_loan_id or 0)
    maturity = int(harness.loan(loan_ref)["maturity"])

    # five days after the first installment's due date (the day after it is day 1), nothing repaid
    first_due = datetime.combine(opened + timedelta(days=30), datetime.min.time(), UTC)
    harness.advance(int(first_due.timestamp()) + 5 * SECONDS_PER_DAY + 3_600 - harness.now())
    assert maturity - harness.now() > 300 * SECONDS_PER_DAY  # by maturity alone it would be current

    runtime = ChainRuntime(job.client, own_chain.record, job.operator)
    service = LoanService(SqlLoanStore(servicing_db), {own_chain.name: runtime})
    listed = await service.delinquencies([loan_record(loan)])  # GET /v1/loans' read
    assert (listed[loan.id].days_past_due, listed[loan.id].bucket) == (5, Bucket.DPD_1_29)
    detail = await service.detail(loan.id, LoanScope())  # GET /v1/loans/{id}'s read
    assert detail.live is not None
    assert (detail.live.delinquency.days_past_due, detail.live.delinquency.bucket) == (5, Bucket.DPD_1_29)

    report = await job.run_round()
    assert report.buckets[loan_ref] is Bucket.DPD_1_29
    assert report.announced == [(loan_ref, Bucket.DPD_1_29)]
    assert not report.defaulted
    with servicing_db.unit_of_work() as uow:
        (event,) = uow.session.scalars(
            select(OutboxEventRow).where(
                OutboxEventRow.loan_id == loan.id, OutboxEventRow.event_type == "loan.past_due"
            )
        ).all()
    assert (event.body["data"]["bucket"], event.body["data"]["days_past_due"]) == ("1-29", 5)


async def test_an_installment_paid_in_full_on_its_due_date_leaves_the_loan_current(
    own_chain: DeployedChain, servicing_db: Database, job: DefaultJob
) -> None:
    """The first installment (109.00) falls due 31 days after opening and the lender's payment of it is recorded that
    day: the chain takes 31 days of interest (9.17) and credits 99.83 of principal, under the schedule's 100.00. A
    week later the loans list, the loan's view and the default job all see the loan current."""
    harness, loan, opened = _open_amortizing_loan(servicing_db, own_chain, first_due_days=31)
    loan_ref = int(loan.onchain_loan_id or 0)
    harness.advance(_at_noon(opened + timedelta(days=31)) - harness.now())
    paid = harness.send(
        harness.aggregator.functions.recordOffchainRepayment(loan_ref, 109 * USDC, b"\x01" * 32), OPERATOR
    )
    record_in_ledger(servicing_db, own_chain, paid)
    with servicing_db.unit_of_work() as uow:
        repaid = uow.session.get(LoanRow, loan.id)
        assert repaid is not None
        assert (repaid.interest_paid or 0) + (repaid.principal_paid or 0) == 109 * USDC
        assert (repaid.principal_paid or 0) < 100 * USDC, "the chain's month was longer than the schedule's"
        loan = repaid
    harness.advance(7 * SECONDS_PER_DAY)

    runtime = ChainRuntime(job.client, own_chain.record, job.operator)
    service = LoanService(SqlLoanStore(servicing_db), {own_chain.name: runtime})
    listed = await service.delinquencies([loan_record(loan)])
    assert (listed[loan.id].days_past_due, listed[loan.id].bucket) == (0, Bucket.CURRENT)
    detail = await service.detail(loan.id, LoanScope())
    assert detail.live is not None
    assert detail.live.delinquency.bucket is Bucket.CURRENT
    report = await job.run_round()
    assert report.buckets[loan_ref] is Bucket.CURRENT
    assert all(ref != loan_ref for ref, _ in report.announced)  # the devnet's other loans are past due by now


def _at_hour(day: date, hour: int) -> int:
    return int(datetime.combine(day, datetime.min.time(), UTC).timestamp()) + hour * 3_600


async def test_the_last_installment_is_not_past_due_on_its_due_date_after_the_opening_s_time_of_day(
    own_chain: DeployedChain, servicing_db: Database, job: DefaultJob
) -> None:
    """Three monthly installments disclosed by ``compliance.disclose`` for a loan opened at 09:00 UTC: on-chain it
    matures at 09:00 of the last due date (opening + the term's whole days). The first two are paid on their due dates;
    at 10:00 of the last due date the last installment is due that day, not late: the loans list, the loan's view and
    the default job see the loan current, and no ``loan.past_due`` goes to its lender and borrower. The next day it is
    1 day past due."""
    harness = Harness(own_chain)
    harness.set_weth_price(3_000)
    open_day = datetime.fromtimestamp(harness.now(), UTC).date() + timedelta(days=2)
    harness.advance(_at_hour(open_day, 9) - harness.now())
    start = datetime.fromtimestamp(harness.now(), UTC)
    plan = InstallmentPlan(count=3)
    term_days = installment_term_days(start, plan)
    terms = LoanTerms(Decimal("1200.00"), "USDC", 6, 900, term_days, Decimal(0), start, installments=plan)
    disclosure = json.loads(disclose(terms).to_canonical_json())
    schedule = schedule_from_disclosure(disclosure)

    borrower: LocalAccount = Account.create()
    harness.impersonate(borrower.address)
    harness.fund(borrower.address, weth=WETH)
    harness.approve_all(borrower.address)
    offer = harness.offer(borrower.address, pool=False, principal=PRINCIPAL, originationFee=0,
                          term=term_days * SECONDS_PER_DAY, rateBps=900)  # fmt: skip
    digest = "0x" + harness.aggregator.functions.offerDigest(offer.as_abi_tuple()).call().hex()
    receipt = harness.send(harness.aggregator.functions.openLoan(*harness.open_args(offer, borrower.key)), RELAYER)
    add_quote(servicing_db, borrower_address=borrower.address, offer_digest=digest, provider_id="sim-bank",
              chain_name=harness.chain.name, chain_id=harness.chain.chain_id, contract=harness.aggregator.address,
              disclosure=disclosure)  # fmt: skip
    record_in_ledger(servicing_db, own_chain, receipt)
    with servicing_db.unit_of_work() as uow:
        opened = uow.session.scalars(select(LoanRow).where(LoanRow.offer_digest == digest)).one()
        loan_id, loan_ref = opened.id, int(opened.onchain_loan_id or 0)
    maturity = datetime.fromtimestamp(int(harness.loan(loan_ref)["maturity"]), UTC)
    assert (maturity.date(), maturity.hour) == (schedule[-1].due, 9)

    for number, installment in enumerate(schedule[:2], start=1):  # paid at 08:00 on their due dates
        harness.advance(_at_hour(installment.due, 8) - harness.now())
        paid = harness.send(
            harness.aggregator.functions.recordOffchainRepayment(loan_ref, installment.amount, bytes([number]) * 32),
            OPERATOR,
        )
        record_in_ledger(servicing_db, own_chain, paid)

    harness.advance(_at_hour(schedule[-1].due, 10) - harness.now())  # an hour past the chain's maturity
    with servicing_db.unit_of_work() as uow:
        row = uow.session.get(LoanRow, loan_id)
        assert row is not None
        record = loan_record(row)
    runtime = ChainRuntime(job.client, own_chain.record, job.operator)
    service = LoanService(SqlLoanStore(servicing_db), {own_chain.name: runtime})
    listed = await service.delinquencies([record])
    assert (listed[loan_id].days_past_due, listed[loan_id].bucket) == (0, Bucket.CURRENT)
    detail = await service.detail(loan_id, LoanScope())
    assert detail.live is not None
    assert detail.live.delinquency.bucket is Bucket.CURRENT
    report = await job.run_round()
    assert report.buckets[loan_ref] is Bucket.CURRENT
    assert all(ref != loan_ref for ref, _ in report.announced)
    assert loan_ref not in report.defaulted

    harness.advance(_at_hour(schedule[-1].due + timedelta(days=1), 1) - harness.now())  # the last one still unpaid
    report = await job.run_round()
    assert report.buckets[loan_ref] is Bucket.DPD_1_29
    assert (loan_ref, Bucket.DPD_1_29) in report.announced
    with servicing_db.unit_of_work() as uow:
        (event,) = uow.session.scalars(
            select(OutboxEventRow).where(
                OutboxEventRow.loan_id == loan_id, OutboxEventRow.event_type == "loan.past_due"
            )
        ).all()
    assert (event.body["data"]["bucket"], event.body["data"]["days_past_due"]) == ("1-29", 1)


async def test_a_second_late_period_gets_its_own_past_due_notice(
    own_chain: DeployedChain, servicing_db: Database, job: DefaultJob
) -> None:
    """Installment 1 missed (1-29 announced), then paid (current: the notices of that late period are deleted),
    installment 2 paid on time, installment 3 missed: the default job announces 1-29 again at once, counted from
    installment 3's due date, instead of saying nothing until the loan reached 30 days."""
    harness, loan, opened = _open_amortizing_loan(servicing_db, own_chain, first_due_days=30)
    loan_ref = int(loan.onchain_loan_id or 0)
    due = [opened + timedelta(days=30 * n) for n in (1, 2, 3)]

    def pay(number: int) -> None:
        call = harness.aggregator.functions.recordOffchainRepayment(loan_ref, 109 * USDC, bytes([number]) * 32)
        record_in_ledger(servicing_db, own_chain, harness.send(call, OPERATOR))

    harness.advance(_at_noon(due[0] + timedelta(days=4)) - harness.now())
    assert (loan_ref, Bucket.DPD_1_29) in (await job.run_round()).announced
    pay(1)
    harness.advance(SECONDS_PER_DAY)
    report = await job.run_round()
    assert report.buckets[loan_ref] is Bucket.CURRENT
    with servicing_db.unit_of_work() as uow:
        assert uow.session.scalars(select(PastDueNoticeRow).where(PastDueNoticeRow.loan_id == loan.id)).all() == []
    harness.advance(_at_noon(due[1]) - harness.now())
    pay(2)
    harness.advance(_at_noon(due[2] + timedelta(days=3)) - harness.now())
    report = await job.run_round()
    assert report.buckets[loan_ref] is Bucket.DPD_1_29
    assert (loan_ref, Bucket.DPD_1_29) in report.announced
    assert all(ref != loan_ref for ref, _ in (await job.run_round()).announced), "announced once in the period"

    with servicing_db.unit_of_work() as uow:
        events = uow.session.scalars(
            select(OutboxEventRow)
            .where(OutboxEventRow.loan_id == loan.id, OutboxEventRow.event_type == "loan.past_due")
            .order_by(OutboxEventRow.sequence)
        ).all()
        notices = uow.session.scalars(select(PastDueNoticeRow).where(PastDueNoticeRow.loan_id == loan.id)).all()
    assert [(e.body["data"]["bucket"], e.body["data"]["days_past_due"], e.body["data"]["since"]) for e in events] == [
        ("1-29", 4, due[0].isoformat()),
        ("1-29", 3, due[2].isoformat()),
    ]
    assert [(n.bucket, n.days_past_due) for n in notices] == [("1-29", 3)], "only the late period under way"
