"""The default job's past-due notices on the in-memory servicing store and outbox: each bucket a loan enters is
recorded and announced as ``loan.past_due`` once — also when a round runs again or another process announced it
first — and a loan that owes nothing, or is not yet past maturity, is announced nothing."""

from __future__ import annotations

from datetime import UTC, datetime

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
