"""A pool loan paid as its quote disclosed, on the package's own devnet with its ledger on PostgreSQL: the single
payment ``compliance.disclose`` discloses (principal plus interest to the quote's start plus the term) paid on the
disclosed due date, at 15:00 for a loan opened at 09:00. On-chain the loan matured at 09:00 and kept accruing, so a
principal remainder of a few cents is left and the loan stays active. Eight days later — past maturity plus the
seven days' grace — the default job neither announces it past due nor marks it in default. The same amount paid the
day after the due date leaves more than that: that loan is announced past due and marked in default, as before. And a
single payment is due all its disclosed due date: a round three hours past the maturity second finds it current."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from aggregator.installments import DueInstallment, schedule_from_disclosure
from aggregator.loans import LoanScope, LoanService
from aggregator.platform import ChainRuntime
from aggregator.servicing.defaults import DefaultJob
from aggregator.servicing.delinquency import Bucket
from compliance import LoanTerms
from compliance.tila.disclosure import disclose
from store.aggregator import LoanRow
from store.db import Database
from store.loans import SqlLoanStore, loan_record
from store.outbox import OutboxEventRow
from tests.contracts.harness import RELAYER, USDC, WETH, Harness
from tests.integration.servicing.conftest import record_in_ledger
from tests.support.devnet import DeployedChain
from tests.support.ledger_facts import add_quote

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ACTIVE, DEFAULTED = 1, 3  # LoanStatus


def _at_hour(day: date, hour: int) -> int:
    return int(datetime.combine(day, datetime.min.time(), UTC).timestamp()) + hour * 3_600


def _open_pool_loan(harness: Harness, database: Database) -> tuple[LocalAccount, int, str, DueInstallment]:
    """1,500 USDC from the pool for 30 days at 9%, disclosed by ``compliance.disclose`` from the opening's time; the
    borrower holds enough USDC to pay. Its on-chain id, ledger id and the disclosed single payment."""
    start = datetime.fromtimestamp(harness.now(), UTC)
    terms = LoanTerms(Decimal("1500.00"), "USDC", 6, 900, 30, Decimal("15.00"), start)
    disclosure = json.loads(disclose(terms).to_canonical_json())
    (payment,) = schedule_from_disclosure(disclosure)
    borrower: LocalAccount = Account.create()
    harness.impersonate(borrower.address)
    harness.fund(borrower.address, weth=WETH, usdc=2_000 * USDC)
    harness.approve_all(borrower.address)
    offer = harness.offer(borrower.address, expiry=harness.now() + 3_600)
    digest = "0x" + harness.aggregator.functions.offerDigest(offer.as_abi_tuple()).call().hex()
    receipt = harness.send(harness.aggregator.functions.openLoan(*harness.open_args(offer, borrower.key)), RELAYER)
    add_quote(database, borrower_address=borrower.address, offer_digest=digest, provider_id="pool:usdc",
              chain_name=harness.chain.name, chain_id=harness.chain.chain_id, contract=harness.aggregator.address,
              kind="pool", disclosure=disclosure)  # fmt: skip
    record_in_ledger(database, harness.chain, receipt)
    with database.unit_of_work() as uow:
        loan = uow.session.scalars(select(LoanRow).where(LoanRow.offer_digest == digest)).one()
        return borrower, int(loan.onchain_loan_id or 0), loan.id, payment


async def test_the_disclosed_payment_on_the_due_date_is_neither_past_due_nor_defaulted(
    own_chain: DeployedChain, servicing_db: Database, job: DefaultJob
) -> None:
    harness = Harness(own_chain)
    harness.set_weth_price(3_000)
    open_day = datetime.fromtimestamp(harness.now(), UTC).date() + timedelta(days=2)
    harness.advance(_at_hour(open_day, 9) - harness.now())
    on_time = _open_pool_loan(harness, servicing_db)
    late = _open_pool_loan(harness, servicing_db)
    due = on_time[3].due
    assert late[3].due == due
    assert datetime.fromtimestamp(int(harness.loan(on_time[1])["maturity"]), UTC).date() == due

    def pay(loan: tuple[LocalAccount, int, str, DueInstallment]) -> None:
        borrower, ref, _, payment = loan
        record_in_ledger(
            servicing_db, own_chain, harness.send(harness.aggregator.functions.repay(ref, payment.amount), borrower)
        )

    harness.advance(_at_hour(due, 15) - harness.now())
    pay(on_time)  # the disclosed amount on the disclosed due date, six hours after the chain's maturity
    remainder = int(harness.loan(on_time[1])["outstandingPrincipal"])
    assert 0 < remainder < USDC // 10, "a few cents of interest since 09:00 left owed"
    harness.advance(_at_hour(due + timedelta(days=1), 10) - harness.now())
    pay(late)  # the same amount a day late

    harness.advance(_at_hour(due + timedelta(days=8), 12) - harness.now())  # past maturity plus the grace
    # the loans API judges them as servicing does: GET /v1/loans' read and GET /v1/loans/{id}'s
    service = LoanService(SqlLoanStore(servicing_db), {own_chain.name: ChainRuntime(job.client, own_chain.record,
                                                                                    job.operator)})  # fmt: skip
    with servicing_db.unit_of_work() as uow:
        rows = [uow.session.get(LoanRow, loan[2]) for loan in (on_time, late)]
        listed = await service.delinquencies([loan_record(row) for row in rows if row is not None])
    assert (listed[on_time[2]].bucket, listed[late[2]].bucket) == (Bucket.CURRENT, Bucket.DPD_1_29)
    detail = await service.detail(on_time[2], LoanScope())
    assert detail.live is not None
    assert detail.live.delinquency.bucket is Bucket.CURRENT
    assert detail.live.principal_owed == remainder, "the remainder is still shown as owed"

    report = await job.run_round()

    assert report.buckets[on_time[1]] is Bucket.CURRENT
    assert report.paid_as_disclosed == {on_time[1]: remainder}
    assert on_time[1] not in report.defaulted
    assert all(ref != on_time[1] for ref, _ in report.announced)
    assert int(harness.loan(on_time[1])["status"]) == ACTIVE  # still open on-chain: paying the remainder closes it

    assert report.buckets[late[1]] is Bucket.DPD_1_29
    assert (late[1], Bucket.DPD_1_29) in report.announced
    assert late[1] in report.defaulted
    assert int(harness.loan(late[1])["status"]) == DEFAULTED

    with servicing_db.unit_of_work() as uow:
        events = uow.session.scalars(
            select(OutboxEventRow.event_type).where(OutboxEventRow.loan_id == on_time[2])
        ).all()
    assert "loan.past_due" not in events
    assert "loan.defaulted" not in events

    assert (await job.run_round()).paid_as_disclosed == {on_time[1]: remainder}, "and every round after"


async def test_a_single_payment_is_not_past_due_on_its_due_date_after_the_maturity_second(
    own_chain: DeployedChain, servicing_db: Database, job: DefaultJob
) -> None:
    """Opened at 09:00, the loan matures on-chain at 09:00 of its disclosed due date; a round at 12:00 that day
    finds it current (the borrower has the rest of the day, UTC, to pay), announces nothing and marks nothing; the
    first round after midnight finds it 1 day past due, counted from the due date."""
    harness = Harness(own_chain)
    harness.set_weth_price(3_000)
    open_day = datetime.fromtimestamp(harness.now(), UTC).date() + timedelta(days=2)
    harness.advance(_at_hour(open_day, 9) - harness.now())
    _, ref, loan_id, payment = _open_pool_loan(harness, servicing_db)
    maturity = int(harness.loan(ref)["maturity"])
    assert _at_hour(payment.due, 9) <= maturity < _at_hour(payment.due, 10), "the maturity: 09:00 on the due date"
    service = LoanService(SqlLoanStore(servicing_db), {own_chain.name: ChainRuntime(job.client, own_chain.record,
                                                                                    job.operator)})  # fmt: skip

    def past_due_events() -> list[dict[str, object]]:
        with servicing_db.unit_of_work() as uow:
            rows = uow.session.scalars(
                select(OutboxEventRow).where(
                    OutboxEventRow.loan_id == loan_id, OutboxEventRow.event_type == "loan.past_due"
                )
            ).all()
            return [dict(row.body["data"]) for row in rows]

    harness.advance(_at_hour(payment.due, 12) - harness.now())  # three hours past the maturity second
    assert maturity < harness.now() < _at_hour(payment.due + timedelta(days=1), 0)
    noon = await job.run_round()
    assert noon.buckets[ref] is Bucket.CURRENT
    assert all(loan != ref for loan, _ in noon.announced)
    assert ref not in noon.defaulted
    assert past_due_events() == []
    with servicing_db.unit_of_work() as uow:
        row = uow.session.get(LoanRow, loan_id)
        assert row is not None
        record = loan_record(row)
    assert (await service.delinquencies([record]))[loan_id].bucket is Bucket.CURRENT
    detail = await service.detail(loan_id, LoanScope())
    assert detail.live is not None
    assert detail.live.delinquency.bucket is Bucket.CURRENT

    harness.advance(_at_hour(payment.due + timedelta(days=1), 0) + 30 - harness.now())  # just after midnight
    after = await job.run_round()
    assert after.buckets[ref] is Bucket.DPD_1_29
    assert (ref, Bucket.DPD_1_29) in after.announced
    assert ref not in after.defaulted  # the grace period is seven days
    (notice,) = past_due_events()
    assert (notice["bucket"], notice["days_past_due"], notice["since"]) == ("1-29", 1, payment.due.isoformat())
    assert (await service.delinquencies([record]))[loan_id].days_past_due == 1
