"""``api.local_platform.ApiService.pids``: the API processes of ``creditmesh serve --processes N`` found as the
supervising process's children running ``serve --port P``, each named by the port it was given."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api.local_platform import ApiService

pytestmark = pytest.mark.unit

SUPERVISOR = """
import subprocess, sys, time
children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "serve", "--port", port])
            for port in sys.argv[1:]]
time.sleep(60)
"""


def test_each_process_is_found_by_the_port_it_serves() -> None:
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, "47001", "47002"], start_new_session=True)
    try:
        api = ApiService(
            "http://127.0.0.1:47000",
            supervisor,
            {"api-1": "http://127.0.0.1:47001", "api-2": "http://127.0.0.1:47002"},
        )
        deadline = time.monotonic() + 30
        while len(pids := api.pids) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(pids) == {"api-1", "api-2"}
        for name, pid in pids.items():
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert command[command.index(b"--port") + 1] == api.processes[name].rsplit(":", 1)[1].encode()
        assert supervisor.pid not in pids.values()
    finally:
        os.killpg(supervisor.pid, signal.SIGKILL)  # the supervisor's own session: it and its two children
        supervisor.wait(timeout=10)


def test_one_process_is_the_service_itself() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert ApiService("http://127.0.0.1:47010", process, {"api-1": "http://127.0.0.1:47010"}).pids == {
            "api-1": process.pid
        }
    finally:
        process.kill()
        process.wait(timeout=10)
