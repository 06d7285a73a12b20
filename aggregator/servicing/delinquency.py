"""Days past due and their buckets, computed when read (never stored as truth: DESIGN.md, "Ledger status").

A single-payment loan is due at its maturity (opening block time + term, the contract's ``maturity``): from the first
second after it, while anything is owed, it is past due, and each day begun counts (the day after the due date is
day 1). Buckets are the standard ones: current, 1–29, 30–59, 60–89, 90+.

Amortizing traditional loans are due per installment; their schedules reach the platform with the screening and
disclosures issue (16). Until then every loan is treated as single-payment, due at maturity.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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
    """Days past due as of block time ``as_of`` (seconds), and their bucket."""

    days_past_due: int
    bucket: Bucket
    as_of: int


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


def delinquency(maturity: int, now: int, owed: bool) -> Delinquency:
    days = days_past_due(maturity, now, owed)
    return Delinquency(days, bucket_of(days), now)


def entered(bucket: Bucket) -> tuple[Bucket, ...]:
    """The past-due buckets a loan has passed through to reach ``bucket`` (each announced once, in order)."""
    return tuple(b for b in BUCKET_ORDER[1 : BUCKET_ORDER.index(bucket) + 1])
