"""``/readyz``'s shared probe (``api.readiness.SharedProbe``): simultaneous callers share one run, a result is reused
for its maximum age from the run's start, a failing run is not kept, and a caller that stops waiting does not stop
the run the others wait for."""

from __future__ import annotations

import asyncio

import pytest

from api.readiness import SharedProbe


class Probe:
    def __init__(self) -> None:
        self.runs = 0
        self.gate = asyncio.Event()
        self.fail = False

    async def __call__(self) -> int:
        self.runs += 1
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("the database did not answer")
        return self.runs


async def test_simultaneous_callers_share_one_run_and_its_result_is_reused_for_its_age() -> None:
    now = [100.0]
    shared: SharedProbe[int] = SharedProbe(2.0, clock=lambda: now[0])
    probe = Probe()
    waiting = [asyncio.ensure_future(shared.result(probe)) for _ in range(50)]
    await asyncio.sleep(0)
    probe.gate.set()
    assert await asyncio.gather(*waiting) == [1] * 50
    now[0] = 101.9
    assert await shared.result(probe) == 1  # younger than 2 s since its run started
    now[0] = 102.0
    assert await shared.result(probe) == 2
    assert probe.runs == 2


async def test_a_failing_run_is_not_kept_and_a_caller_gone_stops_no_run() -> None:
    shared: SharedProbe[int] = SharedProbe(60.0)
    probe = Probe()
    probe.fail = True
    first, gone = asyncio.ensure_future(shared.result(probe)), asyncio.ensure_future(shared.result(probe))
    await asyncio.sleep(0)
    gone.cancel()  # a client that disconnected
    probe.gate.set()
    with pytest.raises(ConnectionError):
        await first
    assert gone.cancelled()
    probe.fail = False
    assert await shared.result(probe) == 2  # asked again, not answered with the failure
    assert await shared.result(probe) == 2


async def test_a_maximum_age_of_zero_still_shares_a_run() -> None:
    shared: SharedProbe[int] = SharedProbe(0.0)
    probe = Probe()
    probe.gate.set()
    assert list(await asyncio.gather(shared.result(probe), shared.result(probe))) == [1, 1]
    assert await shared.result(probe) == 2
