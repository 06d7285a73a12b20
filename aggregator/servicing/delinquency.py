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

**Paid as disclosed** (``paid_as_disclosed``), judged by when the payments were made, not by what is left. The
disclosure tells a borrower to pay each installment's amount by its due date; the contract charges interest per second
(actual/365, rounded up) to the second of each payment, while the schedule's interest follows its own day count
(30/360 by default), and the maturity is the opening's time of day on the last due date. So a borrower who paid every
installment's disclosed amount on its due date still owes on-chain a principal remainder — from cents to a few units,
depending on the times of day, the months' lengths and the day count — and the loan stays open past its last due
date. A loan is paid as disclosed when, for every installment, all repaid in blocks timed (the chain's clock) before
00:00:00 UTC of the day after its due date reached the disclosed amounts of that installment and those before it: each
installment paid in full by the end of its due date, UTC. Such a loan is current, whatever remainder its on-chain
arithmetic left: servicing neither announces it past due nor marks it in default. One installment short at the end of
its due date, by a unit or a day, and the rule does not apply: the loan is judged by its due dates, and after its last
one it is past due while anything is owed (the remainder is then what the borrower owes, interest for the delay with
it), and defaulted after maturity plus the grace period. The remainder of a loan paid as disclosed stays owed on-chain
(the contract forgives nothing, and only a payer closes a loan); paying it releases the collateral. The ledger keeps
each repayment's block, not its time: the times are read from the node (``payment_times``) for the loans the rule can
change — those past due by their due dates that repaid at least the disclosed total of payments; a lender's payment
the operator recorded is dated when the lender said it was made, never after its block, as the closing rule of
``aggregator.offchain_payments`` dates it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
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
    from (the oldest unpaid installment's, the last due date, or the maturity's date), None when current;
    ``paid_as_disclosed``: current only by that rule (``judged``), past due by the due dates alone."""

    days_past_due: int
    bucket: Bucket
    as_of: int
    since: date | None = None
    paid_as_disclosed: bool = False


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


@dataclass(frozen=True, slots=True)
class Payment:
    """A repayment as the chain dated it: its block's time (seconds) and all it paid, interest and principal (base
    units)."""

    at: int
    amount: int


def day_end(day: date) -> int:
    """00:00:00 UTC of the day after ``day`` (seconds): a payment is made on ``day`` when its block is timed before."""
    return int(datetime.combine(day + timedelta(days=1), time.min, UTC).timestamp())


def may_be_paid_as_disclosed(found: Delinquency, schedule: Sequence[DueInstallment], paid: int) -> bool:
    """Whether ``paid_as_disclosed`` can make a loan judged ``found`` by its disclosed ``schedule`` current: it is
    past due, and all it repaid (``paid``) reached the disclosed total of payments. Only such a loan's payment times
    are read."""
    return found.bucket is not Bucket.CURRENT and bool(schedule) and paid >= installments.total_of_payments(schedule)


def paid_as_disclosed(schedule: Sequence[DueInstallment], payments: Sequence[Payment] | None) -> bool:
    """Whether each installment of the disclosed ``schedule``, with those before it, was repaid by the end of its
    due date (UTC: by ``payments`` in blocks timed before ``day_end`` of it; see the module docstring). False without
    a schedule (a loan opened from an offer we never quoted) or without the payments' times (None: not read)."""
    if not schedule or payments is None:
        return False
    due = 0
    for installment in schedule:
        due += installment.amount
        deadline = day_end(installment.due)
        if sum(payment.amount for payment in payments if payment.at < deadline) < due:
            return False
    return True


def judged(
    maturity: int,
    now: int,
    owed: bool,
    schedule: Sequence[DueInstallment],
    paid: int,
    payments: Sequence[Payment] | None = None,
) -> Delinquency:
    """``delinquency`` of a loan with its disclosed ``schedule`` (judged by its due dates), current when it was paid
    as disclosed (``paid_as_disclosed``, by the times of its ``payments``: None when they were not read, as for a loan
    ``may_be_paid_as_disclosed`` rules out; the result says so): the one judgement the loans API shows and the
    default job announces and defaults by."""
    found = delinquency(maturity, now, owed, schedule, paid=paid)
    if not may_be_paid_as_disclosed(found, schedule, paid) or not paid_as_disclosed(schedule, payments):
        return found
    return Delinquency(0, Bucket.CURRENT, now, paid_as_disclosed=True)


def defaultable(maturity: int, grace: int, now: int, judged_now: Delinquency) -> bool:
    """Whether the default job marks an active loan in default at block time ``now``: the contract allows it only
    after ``maturity`` plus the ``grace`` period (seconds), and servicing sends it only while the loan is past due as
    judged now (``judged``): never while it is current — within its last due date (UTC), which may end after the
    maturity plus a short grace period, or paid as disclosed."""
    return now > maturity + grace and judged_now.bucket is not Bucket.CURRENT


def entered(bucket: Bucket) -> tuple[Bucket, ...]:
    """The past-due buckets a loan has passed through to reach ``bucket`` (each announced once, in order)."""
    return tuple(b for b in BUCKET_ORDER[1 : BUCKET_ORDER.index(bucket) + 1])
