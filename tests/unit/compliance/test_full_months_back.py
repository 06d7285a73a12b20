"""``full_months_back`` finds the whole months between two dates without stepping back one month at a time, with the
results of the stepping it replaced: on every pair of dates around month ends and leap days, and on random pairs."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from compliance.tila.apr import _is_month_end, add_months, full_months_back

pytestmark = pytest.mark.unit


def stepped(earlier: date, later: date) -> tuple[int, int]:
    """The method as it was: a month back at a time while it does not pass ``earlier``."""
    month_end = _is_month_end(later)
    months = 0
    while add_months(later, -(months + 1), month_end=month_end) >= earlier:
        months += 1
    boundary = add_months(later, -months, month_end=month_end)
    return months, (boundary - earlier).days


def test_every_pair_around_month_ends_and_leap_days() -> None:
    days = [date(2023, 12, 25) + timedelta(days=n) for n in range(100)]  # December to March across a leap February
    days += [date(2024, 8, 27) + timedelta(days=n) for n in range(40)]  # 30- and 31-day months
    for earlier in days:
        for later in days:  # later before earlier included: no whole months, as before
            assert full_months_back(earlier, later) == stepped(earlier, later), (earlier, later)


def test_random_pairs_over_decades() -> None:
    rng = random.Random(1026)
    for _ in range(3_000):
        earlier = date(1990, 1, 1) + timedelta(days=rng.randrange(20_000))
        later = earlier + timedelta(days=rng.choice([rng.randrange(0, 62), rng.randrange(0, 11_000)]))
        assert full_months_back(earlier, later) == stepped(earlier, later), (earlier, later)
