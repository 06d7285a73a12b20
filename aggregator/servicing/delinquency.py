"""Days past due and their buckets, computed when read (never stored as truth: DESIGN.md, "Ledger status").

A single-payment loan is due at its maturity (opening block time + term, the contract's ``maturity``): from the first
second after it, while anything is owed, it is past due, and each day begun counts (the day after the due date is
day 1). Buckets are the standard ones: current, 1–29, 30–59, 60–89, 90+.

An amortizing loan (a schedule of more than one installment, the one disclosed with its quote:
``aggregator.installments``) is judged by its schedule's due dates alone: its days past due are those of the oldest
installment all that was repaid so far (interest and principal) does not cover (``installments.days_past_due``, whole
days by the UTC date of the chain's clock: the day after a due date is day 1), and never fewer than the days since
its last due date while anything is owed. Not by the chain's maturity: that is the opening's second plus the term's
whole days, so from the opening's time of day on the last due date it was a day past, while the borrower still had
the rest of that day to pay the last installment. The maturity (with the grace period) only decides ``markDefault``.
A loan without a schedule, or with one payment, is judged by its maturity alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from aggregator import installments
from aggregator.installments import DueInstallment

SECONDS_PER_DAY = 86_400


class Bucket(StrEnum):
    CURRENT = "current"
    DPD_1_29 = "1-29"
    DPD_30_59 = "30-59"
    DPD_60_89 = "60-89"
    DPD_90_PLUS = "90+"


BUCKET_ORDER = tuple(Bucket)


@dataclass(frozen=True, slots=True)
class Delinquency:
    """Days past due as of block time ``as_of`` (seconds), and their bucket; ``since``: the due date they are counted
    from (the oldest unpaid installment's, the last due date, or the maturity's date), None when current."""

    days_past_due: int
    bucket: Bucket
    as_of: int
    since: date | None = None


def days_past_due(maturity: int, now: int, owed: bool) -> int:
    """Days begun since ``maturity`` while something is owed; 0 up to maturity itself, or with nothing owed."""
    if not owed or now <= maturity:
        return 0
    return -(-(now - maturity) // SECONDS_PER_DAY)


def bucket_of(days: int) -> Bucket:
    if days <= 0:
        return Bucket.CURRENT
    if days < 30:
        return Bucket.DPD_1_29
    if days < 60:
        return Bucket.DPD_30_59
    if days < 90:
        return Bucket.DPD_60_89
    return Bucket.DPD_90_PLUS


def amortizing_schedule(disclosure: Mapping[str, Any] | None) -> tuple[DueInstallment, ...]:
    """The installments of a loan's quote disclosure when there are several; () for a single payment or no
    disclosure (a loan opened from an offer we never quoted, or a quote stored before schedules were disclosed)."""
    if not disclosure or not disclosure.get("payments"):
        return ()
    schedule = installments.schedule_from_disclosure(disclosure)
    return schedule if len(schedule) > 1 else ()


def delinquency(
    maturity: int,
    now: int,
    owed: bool,
    schedule: Sequence[DueInstallment] = (),
    paid: int = 0,
) -> Delinquency:
    """Days past due at block time ``now``: by the installment ``schedule``'s due dates when it has more than one
    payment (``paid``: all repaid so far, interest and principal, base units; never fewer than the days since the last
    due date while anything is owed), else by ``maturity``."""
    if not owed or len(schedule) <= 1:
        days = days_past_due(maturity, now, owed)
        since = datetime.fromtimestamp(maturity, UTC).date() if days else None
    else:
        today = datetime.fromtimestamp(now, UTC).date()
        since_last = max(0, (today - schedule[-1].due).days)
        days = max(since_last, installments.days_past_due(schedule, paid, today))
        since = today - timedelta(days=days) if days else None
    return Delinquency(days, bucket_of(days), now, since)


def entered(bucket: Bucket) -> tuple[Bucket, ...]:
    """The past-due buckets a loan has passed through to reach ``bucket`` (each announced once, in order)."""
    return tuple(b for b in BUCKET_ORDER[1 : BUCKET_ORDER.index(bucket) + 1])
