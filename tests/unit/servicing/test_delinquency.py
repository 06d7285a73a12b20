"""Days past due and buckets: begun days since maturity while something is owed; for an amortizing loan the days since
its oldest installment all repaid does not cover, by its due dates (never fewer than since the last one), not by the
chain's maturity."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from aggregator.installments import DueInstallment
from aggregator.servicing.delinquency import (
    SECONDS_PER_DAY,
    Bucket,
    Delinquency,
    Payment,
    bucket_of,
    days_past_due,
    defaultable,
    delinquency,
    disclosed_schedule,
    entered,
    judged,
    paid_as_disclosed,
)
from compliance.tila.disclosure import single_payment_interest

pytestmark = pytest.mark.unit

MATURITY = 1_800_000_000


@pytest.mark.parametrize(
    ("seconds_after", "days", "bucket"),
    [
        (-1, 0, Bucket.CURRENT),
        (0, 0, Bucket.CURRENT),
        (1, 1, Bucket.DPD_1_29),
        (SECONDS_PER_DAY, 1, Bucket.DPD_1_29),
        (29 * SECONDS_PER_DAY, 29, Bucket.DPD_1_29),
        (29 * SECONDS_PER_DAY + 1, 30, Bucket.DPD_30_59),
        (59 * SECONDS_PER_DAY + 1, 60, Bucket.DPD_60_89),
        (89 * SECONDS_PER_DAY, 89, Bucket.DPD_60_89),
        (89 * SECONDS_PER_DAY + 1, 90, Bucket.DPD_90_PLUS),
        (400 * SECONDS_PER_DAY, 400, Bucket.DPD_90_PLUS),
    ],
)
def test_days_past_due_and_bucket(seconds_after: int, days: int, bucket: Bucket) -> None:
    found = delinquency(MATURITY, MATURITY + seconds_after, owed=True)
    assert (found.days_past_due, found.bucket, found.as_of) == (days, bucket, MATURITY + seconds_after)


def test_nothing_owed_is_never_past_due() -> None:
    assert days_past_due(MATURITY, MATURITY + 100 * SECONDS_PER_DAY, owed=False) == 0
    assert bucket_of(0) is Bucket.CURRENT


def test_a_loan_enters_each_bucket_on_its_way() -> None:
    assert entered(Bucket.CURRENT) == ()
    assert entered(Bucket.DPD_60_89) == (Bucket.DPD_1_29, Bucket.DPD_30_59, Bucket.DPD_60_89)


# Three monthly installments of 100 principal (6 decimals) + interest; maturity is the last due date.
PAYMENTS = [
    {"number": 3, "due": "2027-04-01", "amount": "101.00", "principal": "100.00", "interest": "1.00"},
    {"number": 1, "due": "2027-02-01", "amount": "103.00", "principal": "100.00", "interest": "3.00"},
    {"number": 2, "due": "2027-03-01", "amount": "102.00", "principal": "100.00", "interest": "2.00"},
]
DISCLOSURE: dict[str, object] = {"assetDecimals": 6, "payments": PAYMENTS}
SCHEDULE = disclosed_schedule(DISCLOSURE)
END = int(datetime(2027, 4, 1, tzinfo=UTC).timestamp())
HUNDRED = 100_000_000


def _at(day: date, seconds: int = 12 * 3600) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) + seconds


def test_a_disclosed_schedule_is_read_in_due_order_a_single_payment_too() -> None:
    assert [(i.number, i.principal) for i in SCHEDULE] == [(1, HUNDRED), (2, HUNDRED), (3, HUNDRED)]
    one = {"assetDecimals": 6, "payments": PAYMENTS[:1]}
    assert [(i.number, i.due) for i in disclosed_schedule(one)] == [(3, date(2027, 4, 1))]
    assert disclosed_schedule(None) == ()
    assert disclosed_schedule({"asset": "USDC"}) == ()  # a disclosure stored before schedules


HUNDRED_3, HUNDRED_2 = 103_000_000, 102_000_000  # the first and second installments' amounts


@pytest.mark.parametrize(
    ("now", "paid", "days", "bucket"),
    [
        (_at(date(2027, 2, 1)), 0, 0, Bucket.CURRENT),  # the due date itself is not past due
        (_at(date(2027, 2, 2)), 0, 1, Bucket.DPD_1_29),  # the first installment missed, maturity two months away
        (_at(date(2027, 2, 2)), HUNDRED_3 - 1, 1, Bucket.DPD_1_29),  # part of an installment leaves it unpaid
        (_at(date(2027, 2, 20)), HUNDRED_3, 0, Bucket.CURRENT),  # the first covered, the second not yet due
        (_at(date(2027, 3, 5)), 0, 32, Bucket.DPD_30_59),  # counted from the oldest unpaid
        (_at(date(2027, 3, 5)), HUNDRED_3, 4, Bucket.DPD_1_29),
        (_at(date(2027, 3, 5)), HUNDRED_3 + HUNDRED_2, 0, Bucket.CURRENT),
        (_at(date(2027, 3, 5)), 3 * HUNDRED, 0, Bucket.CURRENT),  # paid ahead of the schedule
    ],
)
def test_an_amortizing_loan_is_past_due_by_its_schedule(now: int, paid: int, days: int, bucket: Bucket) -> None:
    found = delinquency(END, now, True, SCHEDULE, paid=paid)
    assert (found.days_past_due, found.bucket) == (days, bucket)


def test_an_installment_paid_in_full_is_paid_however_the_chain_split_it() -> None:
    """The first installment's 103.00 paid on its due date, of which the chain's per-second accrual took 3.30 as
    interest (a longer month than the schedule's day count): 99.70 of principal is credited, less than the
    schedule's 100.00, and still the installment is paid, so the loan is current a week later."""
    interest_on_chain = 3_300_000
    principal_credited = HUNDRED_3 - interest_on_chain
    assert principal_credited < HUNDRED
    found = delinquency(END, _at(date(2027, 2, 8)), True, SCHEDULE, paid=interest_on_chain + principal_credited)
    assert (found.days_past_due, found.bucket) == (0, Bucket.CURRENT)


def test_an_amortizing_loan_is_never_judged_less_past_due_than_its_last_due_date() -> None:
    # every installment paid but something still owed after the last due date (2027-04-01): the days since that date
    now = END + 10 * SECONDS_PER_DAY + 1
    assert delinquency(END, now, True, SCHEDULE, paid=306 * 10**6).days_past_due == 10
    assert delinquency(END, now, False, SCHEDULE).days_past_due == 0  # nothing owed


@pytest.mark.parametrize(
    ("now", "days", "bucket"),
    [
        (_at(date(2027, 4, 1), 10 * 3600), 0, Bucket.CURRENT),  # an hour past the chain's maturity second
        (_at(date(2027, 4, 1), SECONDS_PER_DAY - 1), 0, Bucket.CURRENT),  # the due date's last second
        (_at(date(2027, 4, 2)), 1, Bucket.DPD_1_29),  # the day after the last due date is day 1
    ],
)
def test_the_last_installment_is_due_all_its_due_date_whatever_the_chain_maturity(
    now: int, days: int, bucket: Bucket
) -> None:
    """A loan opened at 09:00 matures on-chain at 09:00 of its last due date (opening + the term's whole days); with
    the first two installments paid, the last is due that whole day, as disclosed, not from the opening's time of day.
    """
    maturity = _at(date(2027, 4, 1), 9 * 3600)
    found = delinquency(maturity, now, True, SCHEDULE, paid=HUNDRED_3 + HUNDRED_2)
    assert (found.days_past_due, found.bucket) == (days, bucket)


@pytest.mark.parametrize(
    ("now", "days", "since"),
    [
        (_at(date(2027, 2, 1), 9 * 3600 + 1), 0, None),  # a second past the chain's maturity (opened at 09:00)
        (_at(date(2027, 2, 1), 12 * 3600), 0, None),  # noon on the due date: the audit's round
        (_at(date(2027, 2, 1), SECONDS_PER_DAY - 1), 0, None),  # the due date's last second
        (_at(date(2027, 2, 2), 0), 1, date(2027, 2, 1)),  # midnight after it (UTC): day 1
        (_at(date(2027, 3, 5)), 32, date(2027, 2, 1)),
    ],
)
def test_a_single_payment_is_due_all_its_disclosed_due_date(now: int, days: int, since: date | None) -> None:
    """A single payment disclosed due 2027-02-01 by a loan opened at 09:00, its chain maturity 09:00 that day: past
    due from the day after the due date (UTC), as an installment is, not from the maturity second."""
    single = (DueInstallment(1, date(2027, 2, 1), 103 * 10**6, HUNDRED, 3 * 10**6),)
    maturity = _at(date(2027, 2, 1), 9 * 3600)
    found = delinquency(maturity, now, True, single)
    assert (found.days_past_due, found.bucket, found.since) == (days, bucket_of(days), since)
    assert delinquency(maturity, now, False, single).bucket is Bucket.CURRENT  # nothing owed


def test_without_a_disclosed_schedule_a_loan_is_due_at_its_maturity() -> None:
    found = delinquency(MATURITY, MATURITY + 1, True, ())
    assert (found.days_past_due, found.since) == (1, datetime.fromtimestamp(MATURITY, UTC).date())


@pytest.mark.parametrize(
    ("now", "bucket", "expected"),
    [
        (MATURITY + 7 * SECONDS_PER_DAY, Bucket.DPD_1_29, False),  # maturity plus the grace itself: not yet
        (MATURITY + 7 * SECONDS_PER_DAY + 1, Bucket.DPD_1_29, True),
        (MATURITY + 7 * SECONDS_PER_DAY + 1, Bucket.CURRENT, False),  # judged current (its due date, paid as disclosed)
        (MATURITY + 90 * SECONDS_PER_DAY, Bucket.CURRENT, False),
    ],
)
def test_a_loan_is_marked_in_default_past_the_grace_only_while_past_due(
    now: int, bucket: Bucket, expected: bool
) -> None:
    assert defaultable(MATURITY, 7 * SECONDS_PER_DAY, now, Delinquency(0, bucket, now)) is expected


# A single payment of 1,500.00 USDC at 9% for 30 days, opened at 09:00 UTC on 2027-01-01: due 2027-01-31, which is
# also the day the chain's maturity falls on, at 09:00.
OPENED = int(datetime(2027, 1, 1, 9, tzinfo=UTC).timestamp())
SINGLE_MATURITY = OPENED + 30 * SECONDS_PER_DAY
PRINCIPAL = 1_500 * 10**6
DISCLOSED_INTEREST = single_payment_interest(PRINCIPAL, 900, 30 * SECONDS_PER_DAY)
SINGLE: dict[str, object] = {
    "assetDecimals": 6,
    "payments": [{"number": 1, "due": "2027-01-31", "amount": f"{(PRINCIPAL + DISCLOSED_INTEREST) / 10**6:.6f}",
                  "principal": "1500.00", "interest": f"{DISCLOSED_INTEREST / 10**6:.6f}"}],
}  # fmt: skip


def _remainder_after_paying_the_disclosed_amount_at(moment: int) -> int:
    """The principal the chain still has owed after the disclosed amount is paid at ``moment``: interest first, to
    the second."""
    interest = single_payment_interest(PRINCIPAL, 900, moment - OPENED)
    return PRINCIPAL - (PRINCIPAL + DISCLOSED_INTEREST - interest)


@pytest.mark.parametrize(
    ("paid_at", "expected"),
    [
        (int(datetime(2027, 1, 31, 15, tzinfo=UTC).timestamp()), True),  # later on the due date: a few cents left
        (int(datetime(2027, 2, 1, tzinfo=UTC).timestamp()) - 1, True),  # the due date's last second
        (int(datetime(2027, 2, 1, tzinfo=UTC).timestamp()), False),  # midnight after it (UTC): a day late
        (int(datetime(2027, 2, 5, tzinfo=UTC).timestamp()), False),
    ],
)
def test_the_disclosed_amount_paid_by_the_end_of_the_due_date_is_paid_as_disclosed(
    paid_at: int, expected: bool
) -> None:
    remainder = _remainder_after_paying_the_disclosed_amount_at(paid_at)
    assert remainder > 0
    total = PRINCIPAL + DISCLOSED_INTEREST
    schedule = disclosed_schedule(SINGLE)
    assert paid_as_disclosed(schedule, [Payment(paid_at, total)]) is expected
    now = SINGLE_MATURITY + 8 * SECONDS_PER_DAY  # past the grace: current, or past due since the due date
    found = judged(SINGLE_MATURITY, now, True, schedule, total, [Payment(paid_at, total)])
    assert (found.bucket is Bucket.CURRENT) is expected
    assert found.days_past_due == (0 if expected else 8)
    # the figure of the audit: paid at 15:00 for a loan opened at 09:00 leaves 0.092466 USDC
    if paid_at == int(datetime(2027, 1, 31, 15, tzinfo=UTC).timestamp()):
        assert remainder == 92_466


def test_less_than_the_disclosed_total_or_no_disclosure_is_not_paid_as_disclosed() -> None:
    total, on_time = PRINCIPAL + DISCLOSED_INTEREST, int(datetime(2027, 1, 31, 15, tzinfo=UTC).timestamp())
    schedule = disclosed_schedule(SINGLE)
    assert not paid_as_disclosed(schedule, [Payment(on_time, total - 1)]), "a unit short of the disclosed total"
    assert paid_as_disclosed(schedule, [Payment(on_time - SECONDS_PER_DAY, total - 1), Payment(on_time, 1)])
    assert not paid_as_disclosed((), [Payment(on_time, total)])  # no disclosure
    assert not paid_as_disclosed(schedule, None), "payment times not read"
    late = SINGLE_MATURITY + 8 * SECONDS_PER_DAY
    assert judged(SINGLE_MATURITY, late, True, schedule, total - 1, [Payment(on_time, total)]).days_past_due == 8
