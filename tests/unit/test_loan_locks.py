"""A loan's claim (``aggregator.loan_locks.LoanClaims``) on the in-memory leases: one holder of a loan at a time in a
process (its lock) and across processes (two ``LoanLocks``, as two processes have, on one lease store); another
process's claim waited for up to the patience, then ``LoanBusy`` with nothing run; renewed while held past its time to
live; a dead holder's taken over once it expires; given up when the work ends, also when it fails."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from aggregator.loan_locks import LoanBusy, LoanClaims, LoanLocks
from aggregator.outbox_memory import InMemoryLeases

pytestmark = pytest.mark.unit

TTL = timedelta(seconds=0.3)  # renewed every 0.1 s
LOAN = "3f1c2a9e-0000-4000-8000-000000000001"


def _claims(leases: InMemoryLeases | None, locks: LoanLocks | None = None, patience: float = 5.0) -> LoanClaims:
    return LoanClaims("repayment", locks or LoanLocks(), leases, patience=patience, ttl=TTL)


async def _work(claims: LoanClaims, loan_id: str, log: list[str], name: str, seconds: float = 0.2) -> None:
    async with claims.hold(loan_id):
        log.append(f"{name} in")
        await asyncio.sleep(seconds)
        log.append(f"{name} out")


async def test_two_processes_claiming_one_loan_take_it_one_after_the_other() -> None:
    leases, log = InMemoryLeases(), list[str]()
    one, two = _claims(leases), _claims(leases)  # a LoanLocks each: the lock never orders them, the lease does
    await asyncio.gather(_work(one, LOAN, log, "a"), _work(two, LOAN, log, "b"))
    assert log in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    assert leases.held == {}, "both claims given up"


async def test_without_the_lease_two_processes_would_overlap() -> None:
    """What the lease adds: the locks alone (``leases`` None, the old per-process lock) let two processes in."""
    log: list[str] = []
    await asyncio.gather(_work(_claims(None), LOAN, log, "a"), _work(_claims(None), LOAN, log, "b"))
    assert log[:2] == ["a in", "b in"]


async def test_one_process_waits_on_its_lock_and_other_loans_never_wait() -> None:
    leases, locks, log = InMemoryLeases(), LoanLocks(), list[str]()
    claims = _claims(leases, locks)
    other = "3f1c2a9e-0000-4000-8000-000000000002"
    await asyncio.gather(
        _work(claims, LOAN, log, "a"), _work(claims, LOAN, log, "b"), _work(claims, other, log, "c", seconds=0.05)
    )
    assert log.index("c out") < log.index("a out"), "another loan's claim does not wait for this one's"
    assert log.index("a out") < log.index("b in") or log.index("b out") < log.index("a in")


async def test_another_process_holding_it_past_the_patience_is_loan_busy_and_nothing_runs() -> None:
    leases, log = InMemoryLeases(), list[str]()
    holder = asyncio.create_task(_work(_claims(leases), LOAN, log, "a", seconds=1.0))  # renewed past its TTL
    await asyncio.sleep(0.05)
    impatient = _claims(leases, patience=0.6)
    with pytest.raises(LoanBusy) as busy:
        await _work(impatient, LOAN, log, "b")
    assert (busy.value.loan_id, busy.value.work) == (LOAN, "repayment")
    await holder
    assert log == ["a in", "a out"]
    await _work(impatient, LOAN, log, "b")  # given up: taken at once
    assert log[-2:] == ["b in", "b out"]


async def test_a_dead_holders_claim_is_taken_once_it_expires() -> None:
    leases, log = InMemoryLeases(), list[str]()
    claims = _claims(leases, patience=2.0)
    dead = await leases.acquire(claims.kind(LOAN), 0, "repayment-of-a-process-gone", TTL)
    assert dead is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    await _work(claims, LOAN, log, "b", seconds=0)
    assert TTL.total_seconds() * 0.9 <= loop.time() - started < 1.5, "waited for the expiry, no longer"
    assert log == ["b in", "b out"]


async def test_the_claim_is_given_up_when_the_work_fails() -> None:
    leases = InMemoryLeases()
    claims = _claims(leases)
    held: list[set[tuple[str, int]]] = []

    async def failing() -> None:
        async with claims.hold(LOAN):
            held.append(set(leases.held))
            raise RuntimeError("the chain did not answer")

    with pytest.raises(RuntimeError):
        await failing()
    assert held == [{(claims.kind(LOAN), 0)}]
    assert leases.held == {}
    assert len(claims.kind("f" * 36)) <= 64, "fits the leases' kind column"
