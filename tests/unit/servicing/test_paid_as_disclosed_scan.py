"""Paid as disclosed, over many schedules: loans of 12,000 USDC at 12% in 2 to 12 monthly installments, disclosed by
``compliance.disclose`` (30/360) from many start dates and times of day, repaid as the contract applies repayments
(``InterestMath.simpleInterestUp``: per second, a 365-day year, rounded up; interest first). Each installment's
disclosed amount paid on its due date, at any time of that day (UTC), leaves a principal remainder on-chain, and the
loan is current past its maturity and the grace period, never marked in default; one installment paid a day late or
more, and the loan is past due from its last due date while the remainder is owed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from aggregator.installments import DueInstallment
from aggregator.outbox import EventLoan
from aggregator.outbox_memory import InMemoryOutbox
from aggregator.servicing.defaults import DefaultReport, OnChainLoan, announce_past_due
from aggregator.servicing.delinquency import (
    SECONDS_PER_DAY,
    Bucket,
    Payment,
    defaultable,
    disclosed_schedule,
    judged,
)
from aggregator.servicing.repository import InMemoryServicing, OpenLoan
from compliance import InstallmentPlan, LoanTerms
from compliance.tila.disclosure import disclose

pytestmark = pytest.mark.unit

PRINCIPAL, RATE = 12_000 * 10**6, 1_200
GRACE = 7 * SECONDS_PER_DAY
YEAR = 10_000 * 365 * SECONDS_PER_DAY


def _disclosure(start: datetime, count: int, term_days: int) -> dict[str, object]:
    terms = LoanTerms(Decimal("12000.00"), "USDC", 6, RATE, term_days, Decimal("0"), start,
                      installments=InstallmentPlan(count=count))  # fmt: skip
    disclosure: dict[str, object] = json.loads(disclose(terms).to_canonical_json())
    return disclosure


def _schedules() -> Iterator[tuple[datetime, int, dict[str, object]]]:
    """(opening, term in days, disclosure) of the audit's scan: 171 schedules."""
    for count, term in ((2, 60), (3, 90), (6, 180), (12, 365)):
        for month in range(1, 13):
            for day in (1, 15, 28, 30):
                for hour in (0, 9, 23):
                    try:
                        start = datetime(2026, month, day, hour, tzinfo=UTC)
                        yield start, term, _disclosure(start, count, term)
                    except ValueError:  # no such day, or terms the disclosure refuses
                        continue


SCHEDULES = list(_schedules())


def _repay(opened: int, schedule: tuple[DueInstallment, ...], times: list[int]) -> tuple[list[Payment], int]:
    """Each installment's disclosed amount paid at its ``times``, as the contract applies it: its repayments (block
    time, interest plus principal) and the principal left owed."""
    outstanding, interest, last, payments = PRINCIPAL, 0, opened, []
    for installment, moment in zip(schedule, times, strict=True):
        interest += -(-outstanding * RATE * (moment - last) // YEAR)
        last = moment
        to_interest = min(installment.amount, interest)
        interest -= to_interest
        to_principal = min(installment.amount - to_interest, outstanding)
        outstanding -= to_principal
        payments.append(Payment(moment, to_interest + to_principal))
    return payments, outstanding


def _on(day: date, seconds: int) -> int:
    return int(datetime.combine(day, time.min, UTC).timestamp()) + seconds


def test_the_scan_covers_the_audits_schedules() -> None:
    assert len(SCHEDULES) == 171


@pytest.mark.parametrize("time_of_day", ["opening", "first second", "last second"])
def test_every_on_time_payer_is_current_and_never_defaulted(time_of_day: str) -> None:
    left_over = 0
    for start, term, disclosure in SCHEDULES:
        schedule = disclosed_schedule(disclosure)
        opened = int(start.timestamp())
        seconds = {"opening": start.hour * 3600, "first second": 0, "last second": SECONDS_PER_DAY - 1}[time_of_day]
        payments, remainder = _repay(opened, schedule, [_on(i.due, seconds) for i in schedule])
        if time_of_day == "opening":
            payments, remainder = _repay(opened, schedule, [max(opened, _on(i.due, seconds)) for i in schedule])
        left_over += remainder > 0
        maturity = opened + term * SECONDS_PER_DAY
        paid = sum(p.amount for p in payments)
        for now in (maturity + 1, maturity + GRACE + 1, maturity + 120 * SECONDS_PER_DAY):
            found = judged(maturity, now, remainder > 0, schedule, paid, payments)
            assert found.bucket is Bucket.CURRENT, (start, term, time_of_day, remainder)
            assert not defaultable(maturity, GRACE, now, found)
    assert left_over > 40, "many on-time payers leave a remainder on-chain"


@pytest.mark.parametrize("days_late", [1, 2, 5, 21])
@pytest.mark.parametrize("which", ["last", "first"])
def test_a_payer_days_late_is_past_due_from_the_last_due_date(days_late: int, which: str) -> None:
    judged_late = 0
    for start, term, disclosure in SCHEDULES:
        schedule = disclosed_schedule(disclosure)
        opened, hour = int(start.timestamp()), start.hour * 3600
        times = [max(opened, _on(i.due, hour)) for i in schedule]
        late = len(schedule) - 1 if which == "last" else 0
        times[late] += days_late * SECONDS_PER_DAY
        times = [max(times[: n + 1]) for n in range(len(times))]  # paid in order
        payments, remainder = _repay(opened, schedule, times)
        if not remainder:  # the schedule's day count overpaid the delay's interest: the loan closed, nothing owed
            continue
        judged_late += 1
        maturity, last_due = opened + term * SECONDS_PER_DAY, schedule[-1].due
        paid = sum(p.amount for p in payments)
        now = max(times[-1], maturity + GRACE) + 1
        found = judged(maturity, now, True, schedule, paid, payments)
        today = datetime.fromtimestamp(now, UTC).date()
        assert found.days_past_due == (today - last_due).days > 0, (start, term, days_late, which)
        assert found.since == last_due
        assert defaultable(maturity, GRACE, now, found)
    assert judged_late > 100


def _round(servicing: InMemoryServicing, loan: OpenLoan, state: OnChainLoan, now: int,
           payments: list[Payment]) -> DefaultReport:  # fmt: skip
    report = DefaultReport(0, now)
    events = InMemoryOutbox([EventLoan(loan.id, "sim-bank", None, {"loan_id": loan.id})])
    announce_past_due(servicing, events, [loan], {loan.loan_ref: state}, now, report, payments={loan.id: payments})
    return report


def test_the_audits_on_time_payer_of_three_installments_is_current() -> None:
    """Opened 2026-12-01 23:00, three installments each paid on its due date at 23:00: 0.688 USDC left on-chain, more
    than the interest on the whole principal from the maturity second to midnight (0.164), the old rule's limit."""
    start = datetime(2026, 12, 1, 23, tzinfo=UTC)
    disclosure = _disclosure(start, 3, 90)
    schedule = disclosed_schedule(disclosure)
    opened = int(start.timestamp())
    payments, remainder = _repay(opened, schedule, [_on(i.due, 23 * 3600) for i in schedule])
    assert 600_000 < remainder < 800_000
    maturity = opened + 90 * SECONDS_PER_DAY
    loan = OpenLoan("L3", 3, "active", "pool", None, None, None, remainder,
                    repaid=sum(p.amount for p in payments), disclosure=disclosure)  # fmt: skip
    report = _round(InMemoryServicing(), loan, OnChainLoan(maturity, 1, remainder), maturity + GRACE + 1, payments)
    assert report.buckets == {3: Bucket.CURRENT}
    assert report.paid_as_disclosed == {3: remainder}
    assert report.announced == []


def test_the_audits_payer_21_days_late_is_past_due_and_keeps_its_notice() -> None:
    """Twelve installments from 2026-01-01 00:00:30, the last paid 21 days late: 3.73 USDC left, within the old
    rule's limit, which judged the loan current and deleted its 1-29 notice."""
    start = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    disclosure = _disclosure(start, 12, 365)
    schedule = disclosed_schedule(disclosure)
    opened = int(start.timestamp())
    times = [_on(i.due, 30) for i in schedule]
    times[-1] += 21 * SECONDS_PER_DAY
    payments, remainder = _repay(opened, schedule, times)
    assert 3_000_000 < remainder < 4_500_000
    maturity = opened + 365 * SECONDS_PER_DAY
    servicing = InMemoryServicing()
    before = OpenLoan("L12", 12, "active", "pool", None, None, None, 10**9,
                      repaid=sum(p.amount for p in payments[:-1]), disclosure=disclosure)  # fmt: skip
    first = _round(servicing, before, OnChainLoan(maturity, 1, 10**9), maturity + 15 * SECONDS_PER_DAY,
                   payments[:-1])  # fmt: skip
    assert first.announced == [(12, Bucket.DPD_1_29)]
    after = OpenLoan("L12", 12, "active", "pool", None, None, None, remainder,
                     repaid=sum(p.amount for p in payments), disclosure=disclosure)  # fmt: skip
    now = times[-1] + 9 * SECONDS_PER_DAY
    report = _round(servicing, after, OnChainLoan(maturity, 1, remainder), now, payments)
    assert report.buckets == {12: Bucket.DPD_30_59}
    assert report.paid_as_disclosed == {}
    assert servicing.announced("L12") == {"1-29", "30-59"}, "the late period's notices are kept"
    assert (datetime.fromtimestamp(now, UTC).date() - timedelta(days=30)) == schedule[-1].due


@pytest.mark.parametrize(("days_late", "least"), [(0, 200), (1, 0)])
def test_the_default_job_announces_by_the_judgement_the_loans_api_shows(days_late: int, least: int) -> None:
    """One rule, applied once: over the scan's schedules, each installment paid on its due date (or the last a day
    late), on the last due date, the day after it, past the grace period and 40 days on, a round records the bucket
    ``judged`` gives (what the loans API shows), and counts the loan paid as disclosed (its remainder in
    ``DefaultReport.paid_as_disclosed``) exactly when ``judged`` made it current by that rule: an on-time payer with a
    remainder, from the day after its last due date. The round applied its own copy of the rule, which a change to
    either would have set apart."""
    by_the_rule = 0
    for ref, (start, term, disclosure) in enumerate(SCHEDULES):
        schedule = disclosed_schedule(disclosure)
        opened, hour = int(start.timestamp()), start.hour * 3600
        times = [max(opened, _on(i.due, hour)) for i in schedule]
        times[-1] += days_late * SECONDS_PER_DAY
        payments, remainder = _repay(opened, schedule, times)
        paid, last_due = sum(p.amount for p in payments), _on(schedule[-1].due, 0)
        maturity = opened + term * SECONDS_PER_DAY
        loan = OpenLoan(f"L{ref}", ref, "active", "pool", None, None, None, remainder, repaid=paid,
                        disclosure=disclosure)  # fmt: skip
        for now in (last_due, last_due + SECONDS_PER_DAY, maturity + GRACE + 1, maturity + 40 * SECONDS_PER_DAY):
            found = judged(maturity, now, remainder > 0, schedule, paid, payments)
            report = _round(InMemoryServicing(), loan, OnChainLoan(maturity, 1, remainder), now, payments)
            assert report.buckets == {ref: found.bucket}, (start, term, now)
            assert report.paid_as_disclosed == ({ref: remainder} if found.paid_as_disclosed else {}), (start, term, now)
            on_time = days_late == 0 and remainder > 0 and now >= last_due + SECONDS_PER_DAY
            assert found.paid_as_disclosed is on_time, (start, term, now)
            by_the_rule += found.paid_as_disclosed
    assert by_the_rule >= least
