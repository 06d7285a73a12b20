"""``creditmesh serve --processes 2`` on one real PostgreSQL and Redis, behind its local balancer: requests are
served by both processes in turn (each names itself in ``X-Creditmesh-Process``; the balancer hands every request to
the next process, on a kept-alive client connection too), a lender an admin registers through one of them is
quoted by the other in the next credit request it serves once its poll of the registrations has come round, and a
process killed is started again (on another port when its own was taken meanwhile) while the other goes on
serving."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from api.local_platform import _process_name_of, _serve_children
from api.settings import Settings
from chain.signers import devnet_account
from providers.sim.fleet import SimLender, lender_url
from tests.integration.providers.support import SECRET, sim_server
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform, running_platform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # a platform of two processes on a loaded machine

HEADER = "x-creditmesh-process"
#: how often each process polls the provider registrations (the platform's default: the tests do not set it)
RELOAD_SECONDS = Settings.model_fields["providers_reload_seconds"].default
REQUEST = {"amount": "1500.00", "asset": "USDC", "term_days": 30, "collateral": {"asset": "WETH", "amount": "1.0"}}


@pytest.fixture(scope="module")
def two_processes(
    devnet_chains: dict[str, DeployedChain],
    tmp_path_factory: pytest.TempPathFactory,
    postgres_schema: Callable[[str], str],
    redis_url: str,
) -> Iterator[tuple[RunningPlatform, str]]:
    lender = SimLender(lender_id="late-bank", secret=SECRET)
    with (
        sim_server([lender], Path(tmp_path_factory.mktemp("late-sim"))) as sim,
        running_platform(
            devnet_chains,
            tmp_path_factory.mktemp("two-processes"),
            database_url=postgres_schema("serve_processes"),
            # a reverse proxy at 127.0.0.2 in front of the balancer
            settings={"CREDITMESH_REDIS_URL": redis_url, "CREDITMESH_TRUSTED_PROXIES": '["127.0.0.2/32"]'},
            processes=2,
        ) as platform,
    ):
        yield platform, sim


def _call(platform: RunningPlatform, method: str, path: str, key: str, body: Any = None) -> httpx.Response:
    """One request with ``key`` (a client of its own: the balancer would hand it to the next process either way)."""
    with platform.client(key) as client:
        return client.request(method, path, json=body)


def test_both_processes_serve_and_a_registration_through_one_is_quoted_by_the_other(
    two_processes: tuple[RunningPlatform, str],
) -> None:
    platform, sim = two_processes
    seen: set[str] = set()
    deadline = time.monotonic() + 120  # the balancer answers once one process is up; the other may still start
    while seen != {"api-1", "api-2"}:
        assert time.monotonic() < deadline, f"only {seen} answered"
        answer = httpx.get(f"{platform.api_url}/healthz", timeout=5)
        if answer.status_code == 200:
            seen.add(answer.headers[HEADER])
        else:
            time.sleep(0.2)

    created = _call(
        platform,
        "POST",
        "/v1/providers",
        platform.admin_key,
        {
            "provider_id": "late-bank",
            "kind": "http",
            "config": {"base_url": lender_url(sim, "late-bank"), "secret": SECRET},
            "capabilities": {"assets": ["USDC"]},
        },
    )
    assert created.status_code == 201, created.text
    registered_by = created.headers[HEADER]
    registered_at = time.monotonic()

    borrower = platform.onboard(devnet_account(8).address)
    # the other process follows the registrations every CREDITMESH_PROVIDERS_RELOAD_SECONDS (README): its next credit
    # request after that, plus the poll's read, quotes the new lender; one sent sooner may be before its poll
    time.sleep(max(0.0, registered_at + 3 * RELOAD_SECONDS - time.monotonic()))
    quoted_by: dict[str, set[str]] = {}
    outcomes: dict[str, list[tuple[str, str, str]]] = {}  # what each process's request gave, for a failure's message
    for _ in range(2):  # two requests in a row: one to each process
        response = _call(platform, "POST", "/v1/credit-requests", borrower, REQUEST)
        assert response.status_code == 201, response.text
        providers = {quote["provider_id"] for quote in response.json()["quotes"]}
        quoted_by.setdefault(response.headers[HEADER], set()).update(providers)
        outcomes[response.headers[HEADER]] = [
            (o["provider_id"], o["outcome"], o.get("detail") or "") for o in response.json()["provider_outcomes"]
        ]
    assert set(quoted_by) == {"api-1", "api-2"}, "round robin over the two processes"
    other = ({"api-1", "api-2"} - {registered_by}).pop()
    assert {"late-bank", "sim-bank"} <= quoted_by[other], (
        f"the other process ({other}) quotes the lender registered through {registered_by}: {outcomes}"
    )


def _api_processes(platform: RunningPlatform) -> dict[str, tuple[int, int]]:
    """The supervisor's API processes: name (``api-1`` …) -> (pid, port)."""
    assert platform.api is not None
    children = _serve_children(platform.api.pid).items()
    return {name: (pid, int(port)) for pid, port in children if (name := _process_name_of(pid)) is not None}


def _refusing_listener(port: int, stop: threading.Event) -> socket.socket:
    """Another program's server on loopback ``port`` that closes every connection unanswered."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the killed process's TIME_WAITs
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.settimeout(0.1)

    def refuse() -> None:
        while not stop.is_set():
            try:
                listener.accept()[0].close()
            except TimeoutError:
                continue
            except OSError:
                return

    threading.Thread(target=refuse, daemon=True).start()
    return listener


def _kill_and_take_port(platform: RunningPlatform, stop: threading.Event) -> tuple[int, int, socket.socket]:
    """SIGKILL api-2 and take its port before the supervisor starts it again there (it waits a second): its old pid,
    port and the listener now on that port. Tried again if a stalled test lost that race."""
    for _ in range(3):
        pid, port = _api_processes(platform)["api-2"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                return pid, port, _refusing_listener(port, stop)
            except OSError:  # its listening socket not closed yet, or api-2 already back on it
                back = _api_processes(platform).get("api-2")
                if back is not None and back[0] != pid:
                    break
                time.sleep(0.005)
        _wait_for_api_2(platform, pid)
    raise AssertionError("api-2 came back on its own port before the test could take it, three times")


def _wait_for_api_2(platform: RunningPlatform, dead: int) -> None:
    deadline = time.monotonic() + 120
    while (back := _api_processes(platform).get("api-2")) is None or back[0] == dead:
        assert time.monotonic() < deadline, "api-2 not started again"
        time.sleep(0.2)
    while httpx.get(f"http://127.0.0.1:{back[1]}/healthz", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "api-2 not healthy again"
        time.sleep(0.2)


def test_a_process_killed_is_started_again_on_another_port_when_its_own_was_taken(
    two_processes: tuple[RunningPlatform, str],
) -> None:
    platform, _ = two_processes
    deadline = time.monotonic() + 120
    while len(processes := _api_processes(platform)) < 2:
        assert time.monotonic() < deadline, f"only {processes}"
        time.sleep(0.2)

    stop = threading.Event()
    pid, port, listener = _kill_and_take_port(platform, stop)
    try:
        answered: dict[str, int] = {}
        deadline = time.monotonic() + 120
        while "api-2" not in answered:
            assert time.monotonic() < deadline, f"api-2 not started again; answered by {answered}"
            answer = httpx.get(f"{platform.api_url}/healthz", timeout=30)
            if answer.status_code == 200:
                name = answer.headers[HEADER]
                answered[name] = answered.get(name, 0) + 1
            time.sleep(0.1)
        assert answered.get("api-1", 0) > 0, "api-1 served while api-2 was down"
        new_pid, new_port = _api_processes(platform)["api-2"]
        assert new_pid != pid
        assert new_port != port, "started again on another port: its own is held by another program"
    finally:
        stop.set()
        listener.close()


def test_links_carry_the_scheme_of_a_trusted_proxy_through_the_balancer_and_of_no_one_else(
    two_processes: tuple[RunningPlatform, str],
) -> None:
    platform, _ = two_processes
    for _ in range(2):  # two borrowers, each with an API key: the key list has a second page at limit=1
        _call(platform, "POST", "/v1/borrowers", platform.admin_key, {"wallet_address": Account.create().address})
    https = {"X-API-Key": platform.admin_key, "X-Forwarded-Proto": "https"}
    for source, scheme in (("127.0.0.2", "https://"), ("127.0.0.1", "http://")):
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(base_url=platform.api_url, headers=https, transport=transport, timeout=60) as client:
            for _ in range(2):  # each process in turn
                page = client.get("/v1/api-keys", params={"limit": 1})
                assert page.status_code == 200, page.text
                assert page.json()["next"].startswith(scheme), (source, page.json())
                assert client.get("/v1/loans/").headers["location"].startswith(scheme), source
