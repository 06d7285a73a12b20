"""The default job's past-due notices on the in-memory servicing store and outbox: each bucket a loan enters is
recorded and announced as ``loan.past_due`` once — also when a round runs again or another process announced it
first — and a loan that owes nothing, or is not yet past maturity, is announced nothing; a loan current again has its
late period's notices forgotten, so its next late period is announced from 1-29."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from aggregator import outbox
from aggregator.outbox import EventLoan
from aggregator.outbox_memory import InMemoryOutbox
from aggregator.servicing.defaults import DefaultReport, OnChainLoan, announce_past_due
from aggregator.servicing.delinquency import Bucket
from aggregator.servicing.repository import InMemoryServicing, OpenLoan

pytestmark = pytest.mark.unit

DAY = 86_400
MATURITY = 1_900_000_000
LATE, PAID, EARLY = (OpenLoan(f"loan-{n}", n, "active", None, "sim-bank", None, None, 10**9) for n in (1, 2, 3))


def _round(servicing: InMemoryServicing, events: InMemoryOutbox, now: int) -> DefaultReport:
    onchain = {
        LATE.loan_ref: OnChainLoan(MATURITY, 1, 10**9),
        PAID.loan_ref: OnChainLoan(MATURITY, 1, 0),
        EARLY.loan_ref: OnChainLoan(now + DAY, 1, 10**9),
    }
    report = DefaultReport(block=1, timestamp=now)
    announce_past_due(servicing, events, [LATE, PAID, EARLY], onchain, now, report)
    return report


def test_each_bucket_a_loan_enters_is_announced_once() -> None:
    servicing = InMemoryServicing()
    events = InMemoryOutbox(
        [EventLoan(loan.id, "sim-bank", None, {"loan_id": loan.id}) for loan in (LATE, PAID, EARLY)]
    )

    first = _round(servicing, events, MATURITY + 31 * DAY)
    assert first.announced == [(1, Bucket.DPD_1_29), (1, Bucket.DPD_30_59)]  # it went through both on its way
    assert first.buckets == {1: Bucket.DPD_30_59, 2: Bucket.CURRENT, 3: Bucket.CURRENT}
    assert _round(servicing, events, MATURITY + 32 * DAY).announced == []  # the next round: nothing new

    servicing.announce(LATE.id, Bucket.DPD_60_89.value, 60, datetime.now(UTC))  # another process got there first
    assert _round(servicing, events, MATURITY + 61 * DAY).announced == []

    written = events.events(LATE.id)
    assert [(e.event_type, e.body["data"]["bucket"], e.body["data"]["days_past_due"]) for e in written] == [
        (outbox.LOAN_PAST_DUE, "1-29", 31),
        (outbox.LOAN_PAST_DUE, "30-59", 31),
    ]
    assert written[0].body["data"]["maturity"] == datetime.fromtimestamp(MATURITY, UTC).isoformat().replace(
        "+00:00", "Z"
    )
    assert events.events(PAID.id) == events.events(EARLY.id) == []
    assert set(servicing.notices) == {(LATE.id, "1-29"), (LATE.id, "30-59"), (LATE.id, "60-89")}


# Twelve monthly installments of 109.00 (6 decimals), the first due 2027-01-31; maturity after the last.
INSTALLMENT = 109_000_000
PAYMENTS = [
    {"number": n, "due": (date(2027, 1, 1) + timedelta(days=30 * n)).isoformat(), "amount": "109.00",
     "principal": "100.00", "interest": "9.00"}
    for n in range(1, 13)
]  # fmt: skip
DUE = [date.fromisoformat(str(p["due"])) for p in PAYMENTS]
AMORTIZING = OpenLoan("loan-9", 9, "active", None, "sim-bank", None, None, 1_200 * 10**6,
                      disclosure={"assetDecimals": 6, "payments": PAYMENTS})  # fmt: skip
END = int(datetime(2028, 1, 1, tzinfo=UTC).timestamp())


def _installment_round(servicing: InMemoryServicing, events: InMemoryOutbox, day: date, repaid: int) -> DefaultReport:
    now = int(datetime.combine(day, datetime.min.time(), UTC).timestamp()) + DAY // 2
    report = DefaultReport(block=1, timestamp=now)
    loan = replace(AMORTIZING, repaid=repaid)
    announce_past_due(servicing, events, [loan], {9: OnChainLoan(END, 1, 1_200 * 10**6)}, now, report)
    return report


def test_a_second_late_period_is_announced_from_its_first_bucket() -> None:
    """Installment 1 missed (1-29), caught up (current: the period is over), installment 3 missed: the new late
    period is announced 1-29 at once — not first at 30 days — and then 30-59 when it gets there; each of its events
    keyed by the due date it is counted from, so the first period's events stand apart."""
    servicing = InMemoryServicing()
    events = InMemoryOutbox([EventLoan(AMORTIZING.id, "sim-bank", None, {"loan_id": AMORTIZING.id})])

    assert _installment_round(servicing, events, DUE[0] + timedelta(days=10), 0).announced == [(9, Bucket.DPD_1_29)]
    caught_up = _installment_round(servicing, events, DUE[0] + timedelta(days=12), INSTALLMENT)
    assert (caught_up.buckets[9], caught_up.announced) == (Bucket.CURRENT, [])
    assert servicing.announced(AMORTIZING.id) == set(), "the late period is over"

    second = _installment_round(servicing, events, DUE[2] + timedelta(days=20), 2 * INSTALLMENT)
    assert second.announced == [(9, Bucket.DPD_1_29)]
    assert _installment_round(servicing, events, DUE[2] + timedelta(days=21), 2 * INSTALLMENT).announced == []
    later = _installment_round(servicing, events, DUE[5] + timedelta(days=25), 2 * INSTALLMENT)
    assert later.announced == [(9, Bucket.DPD_30_59), (9, Bucket.DPD_60_89), (9, Bucket.DPD_90_PLUS)]

    written = [(e.body["data"]["bucket"], e.body["data"]["days_past_due"], e.body["data"]["since"], e.dedup_key)
               for e in events.events(AMORTIZING.id)]  # fmt: skip
    assert [row[:3] for row in written] == [
        ("1-29", 10, DUE[0].isoformat()),
        ("1-29", 20, DUE[2].isoformat()),
        ("30-59", 115, DUE[2].isoformat()),
        ("60-89", 115, DUE[2].isoformat()),
        ("90+", 115, DUE[2].isoformat()),
    ]
    assert len({key for *_, key in written}) == 5


def test_a_late_period_announced_again_after_it_was_cleared_is_the_same_event() -> None:
    """The loan read current once (a payment a reorg later removed, say) and late again over the same installment:
    its bucket is recorded again, but its ``loan.past_due`` — keyed by the same due date — is not written twice."""
    servicing = InMemoryServicing()
    events = InMemoryOutbox([EventLoan(AMORTIZING.id, "sim-bank", None, {"loan_id": AMORTIZING.id})])
    _installment_round(servicing, events, DUE[0] + timedelta(days=3), 0)
    _installment_round(servicing, events, DUE[0] + timedelta(days=4), INSTALLMENT)  # current
    _installment_round(servicing, events, DUE[0] + timedelta(days=5), 0)  # the payment gone again
    assert servicing.announced(AMORTIZING.id) == {"1-29"}
    assert [e.body["data"]["days_past_due"] for e in events.events(AMORTIZING.id)] == [3]
