"""Days past due and buckets: begun days since maturity while something is owed."""

from __future__ import annotations

import pytest

from aggregator.servicing.delinquency import SECONDS_PER_DAY, Bucket, bucket_of, days_past_due, delinquency, entered

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
