"""Days past due and their buckets, computed when read (never stored as truth: DESIGN.md, "Ledger status").

A loan whose quote disclosed its payments (``aggregator.installments``: one or several) is judged by the disclosed
due dates alone: its days past due are those of the oldest installment all that was repaid so far (interest and
principal) does not cover (``installments.days_past_due``, whole days by the UTC date of the chain's clock: the day
after a due date is day 1), and never fewer than the days since its last due date while anything is owed. Not by the
chain's maturity: that is the opening's second plus the term's whole days, so from the opening's time of day on the
last due date it was a day past, while the borrower still had the rest of that day (UTC) to pay, as disclosed. A
single payment is due all its disclosed due date too: a loan opened at 09:00 is not past due at 12:00 on it (judged by
the maturity, it was, and ``loan.past_due`` went out). The maturity (with the grace period) only decides
``markDefault``, and that only once the loan is past due by its due dates (``defaultable``). A loan without a
disclosed schedule (opened from an offer we never quoted, or a quote stored before schedules were disclosed) is due
at its maturity: from the first second after it, while anything is owed, it is past due, and each day begun counts.
Buckets are the standard ones: current, 1–29, 30–59, 60–89, 90+.

**Paid as disclosed** (``paid_as_disclosed``). The disclosure tells a borrower to pay its total of payments by its due
date; the contract charges interest per second to the second of payment, and its maturity is the opening's time of
day on the due date. A borrower who pays the disclosed amount later that same day (at 15:00 for a loan opened at
09:00) pays the interest the disclosure counted up to the maturity second, and the interest since is left owed as a
principal remainder of a few cents: the loan stays open on-chain. Such a loan — all it repaid at least the disclosed
total of payments, and the principal it still owes no more than the interest its principal accrues from the maturity
to the end of the last due date (UTC) — was paid as disclosed, on time: servicing neither announces it past due nor
marks it in default. A borrower who paid the same amount a day late owes more than that and is past due as before.
The remainder stays owed on-chain (no one but a payer can close a loan, and the contract forgives nothing), and
paying it releases the collateral.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from aggregator import installments
from aggregator.installments import DueInstallment
from compliance.tila.disclosure import single_payment_interest

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


def disclosed_schedule(disclosure: Mapping[str, Any] | None) -> tuple[DueInstallment, ...]:
    """The installments of a loan's quote disclosure, in due order (one for a single payment); () without a
    disclosure (a loan opened from an offer we never quoted) or with one stored before schedules were disclosed."""
    if not disclosure or not disclosure.get("payments"):
        return ()
    return installments.schedule_from_disclosure(disclosure)


def delinquency(
    maturity: int,
    now: int,
    owed: bool,
    schedule: Sequence[DueInstallment] = (),
    paid: int = 0,
) -> Delinquency:
    """Days past due at block time ``now``: by the disclosed ``schedule``'s due dates, one payment or several
    (``paid``: all repaid so far, interest and principal, base units; never fewer than the days since the last due
    date while anything is owed), else (no schedule) by ``maturity``."""
    if not owed or not schedule:
        days = days_past_due(maturity, now, owed)
        since = datetime.fromtimestamp(maturity, UTC).date() if days else None
    else:
        today = datetime.fromtimestamp(now, UTC).date()
        since_last = max(0, (today - schedule[-1].due).days)
        days = max(since_last, installments.days_past_due(schedule, paid, today))
        since = today - timedelta(days=days) if days else None
    return Delinquency(days, bucket_of(days), now, since)


def paid_as_disclosed(
    disclosure: Mapping[str, Any] | None, paid: int, principal_owed: int, maturity: int, rate_bps: int
) -> bool:
    """Whether a loan was paid as its quote disclosed, by the last due date (see the module docstring): ``paid`` (all
    repaid, interest and principal, base units) reached the disclosure's total of payments, and the principal still
    owed on-chain is no more than the interest the disclosed principal accrues at ``rate_bps`` from ``maturity`` to
    the end of the last due date — the most that paying the disclosed amount on that date can leave. False without a
    disclosed schedule (a loan opened from an offer we never quoted)."""
    if not disclosure or not disclosure.get("payments"):
        return False
    schedule = installments.schedule_from_disclosure(disclosure)
    return paid_on_schedule(schedule, paid, principal_owed, maturity, rate_bps)


def paid_on_schedule(
    schedule: Sequence[DueInstallment], paid: int, principal_owed: int, maturity: int, rate_bps: int
) -> bool:
    """``paid_as_disclosed`` of the disclosure's ``schedule`` (False when it is empty)."""
    if not schedule or paid < installments.total_of_payments(schedule):
        return False
    day_ends = int(datetime.combine(schedule[-1].due + timedelta(days=1), time.min, UTC).timestamp())
    principal = sum(installment.principal for installment in schedule)
    return principal_owed <= single_payment_interest(principal, rate_bps, max(0, day_ends - maturity))


def judged(
    maturity: int,
    now: int,
    owed: bool,
    schedule: Sequence[DueInstallment],
    paid: int,
    principal_owed: int,
    rate_bps: int,
) -> Delinquency:
    """``delinquency`` of a loan with its disclosed ``schedule`` (judged by its due dates), current when it was paid
    as disclosed (``paid_on_schedule``): what the loans API shows, as servicing judges it."""
    found = delinquency(maturity, now, owed, schedule, paid=paid)
    if found.bucket is Bucket.CURRENT or not paid_on_schedule(schedule, paid, principal_owed, maturity, rate_bps):
        return found
    return Delinquency(0, Bucket.CURRENT, now)


def defaultable(maturity: int, grace: int, now: int, judged_now: Delinquency) -> bool:
    """Whether the default job marks an active loan in default at block time ``now``: the contract allows it only
    after ``maturity`` plus the ``grace`` period (seconds), and servicing sends it only while the loan is past due as
    judged now (``judged``): never while it is current — within its last due date (UTC), which may end after the
    maturity plus a short grace period, or paid as disclosed."""
    return now > maturity + grace and judged_now.bucket is not Bucket.CURRENT


def entered(bucket: Bucket) -> tuple[Bucket, ...]:
    """The past-due buckets a loan has passed through to reach ``bucket`` (each announced once, in order)."""
    return tuple(b for b in BUCKET_ORDER[1 : BUCKET_ORDER.index(bucket) + 1])
