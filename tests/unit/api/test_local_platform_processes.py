"""``api.local_platform.ApiService.pids``: the API processes of ``creditmesh serve --processes N`` found as the
supervising process's children running ``serve --port P``, each named by its ``CREDITMESH_PROCESS_NAME`` (a process
started again on another port too), else by the port it was given."""

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
import os, subprocess, sys, time
def child(port, name=None):
    env = {k: v for k, v in os.environ.items() if k != "CREDITMESH_PROCESS_NAME"}
    env |= {"CREDITMESH_PROCESS_NAME": name} if name else {}
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "serve", "--port", port], env=env)
children = [child(port) for port in sys.argv[1:]]
moved = child("47009", "api-3")  # api-3, started again on another port than the one it was first given
time.sleep(60)
"""


def test_each_process_is_found_by_its_name_or_the_port_it_serves() -> None:
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, "47001", "47002"], start_new_session=True)
    try:
        api = ApiService(
            "http://127.0.0.1:47000",
            supervisor,
            {"api-1": "http://127.0.0.1:47001", "api-2": "http://127.0.0.1:47002", "api-3": "http://127.0.0.1:47003"},
        )
        deadline = time.monotonic() + 30
        while len(pids := api.pids) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(pids) == {"api-1", "api-2", "api-3"}
        ports = {}
        for name, pid in pids.items():
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            ports[name] = command[command.index(b"--port") + 1].decode()
        assert ports == {"api-1": "47001", "api-2": "47002", "api-3": "47009"}
        assert supervisor.pid not in pids.values()
    finally:
        os.killpg(supervisor.pid, signal.SIGKILL)  # the supervisor's own session: it and its three children
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
