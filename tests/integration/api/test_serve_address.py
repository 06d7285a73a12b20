"""``creditmesh serve --processes N`` on an address it cannot listen on (taken by another program) exits 1 with one
line naming the address and the cause, not a traceback (it listens before it starts any API process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_an_address_in_use_is_named_in_one_line() -> None:
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", 0))
        other_program.listen()
        port = other_program.getsockname()[1]
        # never reached: the database and Redis are checked by the API processes, and none is started
        env = os.environ | {
            "CREDITMESH_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none",
            "CREDITMESH_REDIS_URL": "redis://127.0.0.1:9/0",
        }
        done = subprocess.run(
            [sys.executable, "-m", "api.cli", "serve", "--processes", "2", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1, done
    assert done.stderr.strip() == f"creditmesh serve: cannot listen on 127.0.0.1:{port}: Address already in use"


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"CREDITMESH_DATABASE_URL": ""}, "needs a shared database: set CREDITMESH_DATABASE_URL"),
        (
            {"CREDITMESH_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none", "CREDITMESH_REDIS_URL": ""},
            "needs Redis for the limits its processes share",
        ),
    ],
)
def test_several_processes_without_what_they_share_are_refused(settings: dict[str, str], said: str) -> None:
    """Without Redis each process kept its own velocity counters: a limit of 1 request an hour admitted 2 with two
    processes. ``serve --processes 2`` now refuses to start, naming the setting, before it listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--processes", "2", "--port", str(port)],
        env=os.environ | settings,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done
    assert said in done.stderr
    assert "Traceback" not in done.stderr
