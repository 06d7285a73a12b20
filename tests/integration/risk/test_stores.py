"""Velocity counters in a real Redis hold across two clients; decisions round-trip through PostgreSQL."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from risk.errors import VelocityLimitExceeded
from risk.policy import assess
from risk.profile import CreditProfile
from risk.repository import StoredDecision
from risk.velocity import RedisVelocityStore, VelocityLimits, VelocityRequest, admit_in_steps, check_velocity
from store.compliance import AuditEntryRow
from store.risk import RiskDecisionRow, SqlRiskDecisionRepository
from tests.unit.risk.test_policy import REQUEST, STRONG

pytestmark = pytest.mark.integration

LIMITS = VelocityLimits(window_seconds=60, per_borrower=3, per_wallet=10, per_ip=10)


async def test_redis_limits_hold_across_two_clients(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}"
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        one, two = RedisVelocityStore(first, prefix), RedisVelocityStore(second, prefix)
        await check_velocity(one, LIMITS, borrower_id="b1", wallet=None, ip=None, now=100.0)
        await check_velocity(two, LIMITS, borrower_id="b1", wallet=None, ip=None, now=101.0)
        await check_velocity(one, LIMITS, borrower_id="b1", wallet=None, ip=None, now=102.0)
        with pytest.raises(VelocityLimitExceeded) as stopped:
            await check_velocity(two, LIMITS, borrower_id="b1", wallet=None, ip=None, now=103.0)
        assert stopped.value.count == 4
        # outside the window the older events no longer count
        await check_velocity(one, LIMITS, borrower_id="b1", wallet=None, ip=None, now=163.5)
        wallet = "0x" + "cd" * 20
        await check_velocity(one, LIMITS, borrower_id="alice", wallet=wallet, ip=None, now=200.0)
        with pytest.raises(VelocityLimitExceeded) as claimed:
            await check_velocity(
                two, LIMITS, borrower_id="mallory", wallet=wallet.upper().replace("0X", "0x"), ip=None, now=201.0
            )
        assert claimed.value.rule == "wallet_identities"
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_check_is_one_round_trip_that_counts_as_one_key_at_a_time(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    store = RedisVelocityStore(redis, f"test:{uuid.uuid4().hex}")
    commands: list[str] = []
    execute_command: Any = redis.execute_command

    async def recorded(*args: Any, **options: Any) -> Any:
        commands.append(str(args[0]))
        return await execute_command(*args, **options)

    redis.execute_command = recorded  # type: ignore[method-assign]
    wallet = "0x" + "ab" * 20
    try:
        await check_velocity(store, LIMITS, borrower_id="b1", wallet=wallet, ip="10.0.0.1", now=100.0)
        assert commands[-1] == "EVALSHA"  # the counts, the wallet's claim and the hits in one script
        assert len(commands) <= 2  # (a SCRIPT LOAD before it the first time)
        keys = ["borrower:b1", f"wallet:{wallet}", "ip:10.0.0.1", "ip:10.0.0.2"]
        assert (
            await store.counts(keys, 101.0, 60) == [await store.count(key, 101.0, 60) for key in keys] == [1, 1, 1, 0]
        )
        assert await store.hits(keys, 102.0, 60) == [2, 2, 2, 1]
        assert await store.counts(keys, 170.0, 60) == [0, 0, 0, 0]  # every event left the window
    finally:
        await redis.aclose()


async def test_the_one_round_trip_admits_and_refuses_as_the_three_steps_did(redis_url: str) -> None:
    """Random checks (borrowers, wallets shared by identities, IPs, times) against two fresh prefixes: one admitted
    by the script, the other by the steps it replaced (``admit_in_steps``); the same answers and the same counters."""
    redis = Redis.from_url(redis_url)
    script = RedisVelocityStore(redis, f"test:{uuid.uuid4().hex}")
    steps = RedisVelocityStore(redis, f"test:{uuid.uuid4().hex}")
    rng = random.Random(18)
    limits = (2, 3, 4)
    try:
        now = 1_000.0
        for _ in range(150):
            now += rng.choice((0.001, 0.5, 7.0))
            borrower, wallet, ip = f"b{rng.randrange(4)}", rng.choice(("0xaa", "0xbb", None)), f"ip{rng.randrange(3)}"
            keys = [f"borrower:{borrower}", f"ip:{ip}"] + ([f"wallet:{wallet}"] if wallet else [])
            request = VelocityRequest(tuple(keys), limits[: len(keys)], 20, wallet, borrower, 2)
            assert await script.admit(request, now) == await admit_in_steps(steps, request, now)
            every = [f"borrower:b{n}" for n in range(4)] + [f"ip:ip{n}" for n in range(3)] + ["wallet:0xaa"]
            assert await script.counts(every, now, 20) == await steps.counts(every, now, 20)
        assert await script.claim_wallet("0xaa", "probe") == await steps.claim_wallet("0xaa", "probe")
    finally:
        await redis.aclose()


@pytest.fixture
def session(postgres_url: str) -> Iterator[Session]:
    engine = create_engine(postgres_url)
    tables = [RiskDecisionRow.__table__, AuditEntryRow.__table__]
    RiskDecisionRow.metadata.create_all(engine, tables=tables)  # type: ignore[arg-type]
    with Session(engine) as session:
        yield session
        session.rollback()
    engine.dispose()


@pytest.mark.parametrize("write", ["add", "insert"])  # through the flush, or plain INSERTs (the quote path)
def test_decisions_round_trip_through_postgres(session: Session, write: str) -> None:
    repo = SqlRiskDecisionRepository(session)
    borrower = uuid.uuid4().hex
    approved = StoredDecision(str(uuid.uuid4()), borrower, None, assess(STRONG, REQUEST, None), datetime.now(UTC))
    declined = StoredDecision(
        str(uuid.uuid4()), borrower, "req-1", assess(CreditProfile(), REQUEST, None), datetime.now(UTC)
    )
    getattr(repo, write)(approved)
    getattr(repo, write)(declined)
    session.expire_all()
    got = repo.get(declined.id)
    assert got is not None
    assert got.decision == declined.decision
    assert got.decision.reasons[0].code == "R20"
    assert [s.id for s in repo.for_borrower(borrower)] == [approved.id, declined.id]
    assert repo.get("missing") is None
    row = session.get(RiskDecisionRow, approved.id)
    assert row is not None
    assert row.decision_hash == "0x" + approved.decision.decision_hash().hex()
    audited = session.scalars(select(AuditEntryRow).where(AuditEntryRow.subject == borrower)).all()
    assert [(e.kind, e.data["decisionHash"]) for e in audited] == [
        ("risk-decision", "0x" + stored.decision.decision_hash().hex()) for stored in (approved, declined)
    ]
