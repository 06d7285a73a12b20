"""Velocity refusals do not count (a stopped borrower is free once the window slides past the accepted requests,
however often they retried), and every key expires."""

from __future__ import annotations

import random

import pytest

from risk.errors import SubmissionLimitExceeded, VelocityLimitExceeded
from risk.velocity import (
    KYC_SUBMISSION_WINDOW_SECONDS,
    InMemoryVelocityStore,
    VelocityLimits,
    check_kyc_submissions,
    check_velocity,
    record_kyc_submission,
)

pytestmark = pytest.mark.unit

LIMITS = VelocityLimits(window_seconds=60, per_borrower=3, per_wallet=3, per_ip=4)


async def test_refused_requests_do_not_count() -> None:
    store = InMemoryVelocityStore()
    for i in range(3):
        await check_velocity(store, LIMITS, borrower_id="b1", wallet=None, ip=None, now=1000.0 + i)
    for second in range(3, 60):
        with pytest.raises(VelocityLimitExceeded) as stopped:
            await check_velocity(store, LIMITS, borrower_id="b1", wallet=None, ip=None, now=1000.0 + second)
        assert stopped.value.count == 4
    # 61 s after the first accepted request the window holds two accepted ones and none of the 57 refused
    await check_velocity(store, LIMITS, borrower_id="b1", wallet=None, ip=None, now=1061.0)


async def test_a_refused_wallet_or_ip_does_not_charge_the_other_counters() -> None:
    store = InMemoryVelocityStore()
    for i in range(4):
        await check_velocity(store, LIMITS, borrower_id=f"b{i}", wallet=None, ip="198.51.100.7", now=1000.0)
    for _ in range(10):
        with pytest.raises(VelocityLimitExceeded):
            await check_velocity(store, LIMITS, borrower_id="b9", wallet=None, ip="198.51.100.7", now=1001.0)
    assert await store.count("borrower:b9", 1001.0, 60) == 0


async def test_in_memory_keys_expire() -> None:
    store = InMemoryVelocityStore(claim_ttl_seconds=100, sweep_every=100)
    for i in range(1_000):
        await check_velocity(store, LIMITS, borrower_id=f"b{i}", wallet=f"0x{i:040x}", ip=f"ip-{i}", now=float(i))
    assert len(store) < 600, "keys whose window has passed are swept"
    for i in range(100):
        await check_velocity(store, LIMITS, borrower_id="late", wallet=None, ip=None, now=10_000.0 + i * 30)
    assert len(store) <= 2, "every window and every claim has expired"


async def test_the_in_memory_window_counts_as_a_scan_of_its_events_does_with_the_clock_stepping_back() -> None:
    rng = random.Random(7)
    store, scanned = InMemoryVelocityStore(), list[float]()
    now = 1000.0
    for _ in range(2_000):
        now += rng.choice([-3.0, 0.0, 0.5, 1.0, 2.5, 40.0])  # the clock steps back now and then
        if rng.random() < 0.3:
            assert await store.count("ip:a", now, 60) == sum(1 for t in scanned if t > now - 60)
            scanned = [t for t in scanned if t > now - 60]  # what left the window is dropped for good
            continue
        scanned = [t for t in scanned if t > now - 60] + [now]
        assert await store.hit("ip:a", now, 60) == len(scanned)


async def test_kyc_submissions_are_limited_per_borrower_and_day_and_their_refusals_do_not_count() -> None:
    """Each KYC submission the provider takes creates an applicant there (billed per applicant): at most ``limit`` a
    day. A check counts nothing: a submission the provider did not take (an outage, retried) is never recorded."""

    async def submitted(borrower: str, at: float) -> None:
        await check_kyc_submissions(store, borrower, 5, at)
        await record_kyc_submission(store, borrower, at)

    store = InMemoryVelocityStore()
    for _ in range(20):  # the provider down: checked, answered 503, retried; nothing recorded
        await check_kyc_submissions(store, "b1", 5, 900.0)
    for hour in range(5):
        await submitted("b1", 1_000.0 + 3_600 * hour)
    for _ in range(3):
        with pytest.raises(SubmissionLimitExceeded) as stopped:
            await check_kyc_submissions(store, "b1", 5, 20_000.0)
        assert (stopped.value.limit, stopped.value.window_seconds) == (5, KYC_SUBMISSION_WINDOW_SECONDS)
        assert 0 < stopped.value.retry_after <= KYC_SUBMISSION_WINDOW_SECONDS
    await submitted("b2", 20_000.0)  # another borrower's own count
    await submitted("b1", 1_000.0 + KYC_SUBMISSION_WINDOW_SECONDS)  # the first left the day
    with pytest.raises(SubmissionLimitExceeded):
        await check_kyc_submissions(store, "b1", 5, 1_001.0 + KYC_SUBMISSION_WINDOW_SECONDS)
