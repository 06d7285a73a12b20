"""Several API processes on one PostgreSQL and one Redis (issue 18's chaos tests): the platform of
``tests.support.platform`` (the simulated lenders, KYC/MLA and a first API) and more ``creditmesh serve`` processes
on their own loopback ports with the same settings, which a test kills and starts again one by one."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from chain.devnet import free_port
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform, _start_api, _wait, running_platform
from tests.support.services import fresh_schema

#: leases and claims short enough that a test sees a dead process's work taken over within seconds
SHORT_LEASES = {
    "CREDITMESH_ACCEPT_LEASE_SECONDS": "2",
    "CREDITMESH_INDEXER_LEASE_SECONDS": "2",
    "CREDITMESH_OUTBOX_LEASE_SECONDS": "2",
    "CREDITMESH_SERVICING_LEASE_SECONDS": "2",
    "CREDITMESH_OUTBOX_POLL_SECONDS": "0.2",
}
#: a busy shared machine makes a quote slow, not refused: wide fan-out and lender deadlines
WIDE_DEADLINES = {"CREDITMESH_FANOUT_DEADLINE_SECONDS": "20"}
#: no borrower, wallet or address is stopped by the velocity limits under a test's load
NO_VELOCITY_LIMITS = {
    "CREDITMESH_VELOCITY_PER_BORROWER": "100000",
    "CREDITMESH_VELOCITY_PER_WALLET": "100000",
    "CREDITMESH_VELOCITY_PER_IP": "100000",
}


class StartCluster(Protocol):
    """A test fixture's way to a cluster (``tests/chaos/conftest.py``'s ``start_cluster``)."""

    def __call__(
        self,
        schema: str,
        settings: dict[str, str] | None = None,
        *,
        chains: dict[str, DeployedChain] | None = None,
        postgres_url: str | None = None,
    ) -> AbstractContextManager[ApiCluster]: ...


@dataclass
class ApiCluster:
    """``platform`` is the first API with the simulated services; ``urls[i]`` is API process i (0 = the platform's)."""

    platform: RunningPlatform
    urls: list[str]
    extra: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def process(self, index: int) -> subprocess.Popen[bytes]:
        if index == 0:
            assert self.platform.api is not None
            return self.platform.api
        return self.extra[index]

    def kill(self, index: int) -> None:
        """SIGKILL API process ``index`` (no shutdown of any kind) and wait for it."""
        process = self.process(index)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def start(self, index: int, extra_env: dict[str, str] | None = None) -> None:
        """Start API process ``index`` again on its port (stopping it first if it runs), with ``extra_env``."""
        if index == 0:
            self.platform.restart_api(extra_env)
            return
        old = self.extra[index]
        if old.poll() is None:
            old.terminate()
            old.wait(timeout=30)
        self.extra[index] = _serve(self.platform, self.urls[index], extra_env)

    def client(self, index: int, api_key: str) -> httpx.Client:
        return httpx.Client(base_url=self.urls[index], headers={"X-API-Key": api_key}, timeout=120)


def _serve(platform: RunningPlatform, url: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    process = _start_api(platform.env | (extra_env or {}), int(url.rsplit(":", 1)[1]), platform.data_dir)
    _wait(f"{url}/healthz", process)
    return process


@contextmanager
def api_cluster(
    chains: dict[str, DeployedChain],
    data_dir: Path,
    *,
    postgres_url: str,
    schema: str,
    redis_url: str,
    processes: int = 3,
    settings: dict[str, str] | None = None,
    workers: str = "none",
) -> Iterator[ApiCluster]:
    """``processes`` API processes sharing a fresh ``schema`` on the PostgreSQL at ``postgres_url`` (dropped and
    created here) and ``redis_url``, with short leases and no velocity limits (``settings`` adds or overrides): the
    first with the simulated services, then the others at once; all stopped on exit."""
    database_url = fresh_schema(postgres_url, schema)
    env = SHORT_LEASES | WIDE_DEADLINES | NO_VELOCITY_LIMITS | {"CREDITMESH_REDIS_URL": redis_url} | (settings or {})
    with running_platform(chains, data_dir, database_url, settings=env, workers=workers, lender_timeout=15) as platform:
        cluster = ApiCluster(platform, [platform.api_url])
        try:
            for index in range(1, processes):  # started together, as `creditmesh serve --processes` starts them
                url = f"http://127.0.0.1:{free_port()}"
                cluster.urls.append(url)
                cluster.extra[index] = _start_api(platform.env, int(url.rsplit(":", 1)[1]), platform.data_dir)
            for index in range(1, processes):
                _wait(f"{cluster.urls[index]}/healthz", cluster.extra[index])
            yield cluster
        finally:
            for process in cluster.extra.values():
                process.terminate()
            for process in cluster.extra.values():
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
