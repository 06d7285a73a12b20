"""bench.profile_shares: a stack counts for the first part it matches, a clump is left out and reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.profile_shares import OTHER, shares

pytestmark = pytest.mark.unit

PROFILE = """\
run (uvicorn/main.py:1);_ask (aggregator/fanout.py:30);quote (providers/http_lender.py:300);send (httpx/_client.py:1) 6
run (uvicorn/main.py:1);_ask (aggregator/fanout.py:30);_attempt (providers/resilience.py:120) 2
_worker (thread.py:83);_disclose_sign_and_store (aggregator/quoting.py:305);execute (sqlalchemy/x.py:1) 1
run (uvicorn/main.py:1);_run_once (asyncio/base_events.py:1922) 1
run (uvicorn/main.py:1);call_at (asyncio/base_events.py:744) 40
not a profile line
"""


def test_each_stack_in_its_first_part_and_clumps_apart(tmp_path: Path) -> None:
    profile = tmp_path / "p.profile.txt"
    profile.write_text(PROFILE)
    found = shares(profile)
    assert found.samples == 10
    assert found.clumps == [40]
    assert found.parts == {
        "the HTTP lender calls": 60.0,
        "the fan-out and the resilience layers": 20.0,
        "disclose, sign and write; the response rendered": 10.0,
        "the framework and the middleware": 10.0,
    }
    assert shares(profile, clump=50).samples == 50
    assert OTHER not in found.parts
