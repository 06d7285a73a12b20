"""The platform's pieces started on this machine, one way for everyone: ``creditmesh run`` (fixed ports, until
Ctrl-C) and ``bench/quote_path.py`` (free loopback ports, a fleet at a fixed latency, an older source tree) both
start them here, so what the benchmark measures is what a user runs.

``local_chains`` starts one anvil per local chain and deploys the contract set to each; ``platform_services``
starts the simulated lenders (the default fleet or a fleet file), the simulated identity providers (KYC and MLA,
whose verdicts come back as signed webhooks to the API) and the API, each its own process, and stops them on exit;
``simulators`` and ``api_service`` start the two halves on their own (``bench/scale.py`` starts the API again for
each number of processes, as ``creditmesh serve --processes N`` runs it, against the same simulators)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx

from api.cli._common import API_PORT
from chain.config import LOCAL_CHAINS
from chain.deployment import DeploymentRecord
from chain.devnet import Devnet, devnets, free_port
from compliance.sim import DEFAULT_PORT as IDENTITY_PORT
from contracts.deploy import deploy_to_devnet
from providers.sim.fleet import DEFAULT_PORT as LENDER_PORT
from providers.sim.fleet import SimLender, http_lender_settings

LOOPBACK = "127.0.0.1"


class ServicePortTaken(Exception):
    """Another program listens on the loopback port a local service was to start on (its health check would have
    been answered by that program, not by the service)."""

    def __init__(self, service: str, port: int) -> None:
        super().__init__(f"port {port} ({service}) is taken by another program")
        self.service, self.port = service, port


@dataclass(frozen=True, slots=True)
class ServicePorts:
    """Where the API, the simulated lenders and the simulated identity providers listen (loopback)."""

    api: int = API_PORT
    lenders: int = LENDER_PORT
    identity: int = IDENTITY_PORT

    @classmethod
    def free(cls) -> ServicePorts:
        return cls(free_port(), free_port(), free_port())

    def refuse_taken(self) -> None:
        """``ServicePortTaken`` for the first of these ports another program listens on (before anything starts)."""
        for service, port in (("api", self.api), ("lenders", self.lenders), ("identity", self.identity)):
            if _listening(port):
                raise ServicePortTaken(service, port)


@dataclass(frozen=True, slots=True)
class LocalChains:
    devnets: list[Devnet]
    deployments: dict[str, DeploymentRecord]
    #: a chains file naming the devnets, when they are not on their fixed ports (give it to the API's settings)
    chains_file: Path | None


@dataclass(frozen=True, slots=True)
class ApiService:
    """The API as ``creditmesh serve --processes N`` runs it: one process on ``url`` (N = 1), or N processes behind
    the local balancer on ``url`` (``processes``: each one's name, ``api-1`` …, and its own loopback URL)."""

    url: str
    process: subprocess.Popen[bytes]
    processes: dict[str, str]

    @property
    def pids(self) -> dict[str, int]:
        """Each API process's pid by name (with N = 1, the one process; otherwise the balancer's children, each
        known by its ``CREDITMESH_PROCESS_NAME``, else by the port it was first given: a process started again may
        be on another)."""
        if len(self.processes) == 1:
            return {name: self.process.pid for name in self.processes}
        ports = {url.rsplit(":", 1)[1]: name for name, url in self.processes.items()}
        found = {}
        for pid, port in _serve_children(self.process.pid).items():
            name = _process_name_of(pid) or ports.get(port)
            if name in self.processes:
                found[name] = pid
        return dict(sorted(found.items()))


@dataclass(frozen=True, slots=True)
class Simulators:
    lenders_url: str
    identity_url: str
    lenders: subprocess.Popen[bytes]
    #: the environment that points an API at these simulators (lenders of the fleet file, identity providers)
    env: dict[str, str]


@dataclass(frozen=True, slots=True)
class PlatformServices:
    api_url: str
    lenders_url: str
    identity_url: str
    api: subprocess.Popen[bytes]

    @property
    def api_pid(self) -> int:
        return self.api.pid


@contextmanager
def local_chains(
    deployments_dir: Path,
    *,
    free_ports: bool = False,
    state_dir: Path | None = None,
    prices_usd: Mapping[str, Decimal] | None = None,
) -> Iterator[LocalChains]:
    """The three local devnets (on their fixed ports 8545-8547, or free ones), the contract set deployed to each
    (records in ``deployments_dir``; a chain kept in ``state_dir`` from an earlier run already has it, and the
    deployment only checks and finishes it; ``prices_usd``: the mock price feeds' first answers); stopped on exit."""
    with devnets(LOCAL_CHAINS, free_ports=free_ports, state_dir=state_dir) as started:
        records = {
            devnet.name: deploy_to_devnet(
                devnet.name, devnet.chain_id, devnet.rpc_url, deployments_dir / f"{devnet.name}.json", prices_usd
            )
            for devnet in started
        }
        chains_file = None
        if free_ports:
            from api.bootstrap import write_chains_file  # the API's whole bootstrap, only when a file is written

            chains_file = deployments_dir.parent / "chains.json"
            write_chains_file(chains_file, [devnet.config() for devnet in started])
        yield LocalChains(started, records, chains_file)


@contextmanager
def simulators(
    ports: ServicePorts,
    *,
    fleet_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    code: Path | None = None,
    log_dir: Path | None = None,
    timeout: float = 90.0,
) -> Iterator[Simulators]:
    """The simulated lenders (those of ``fleet_file``, or the simulator's default fleet, which the settings' default
    lenders name) and the simulated identity providers (their webhooks to the API on ``ports.api``), each a process
    configured by ``env`` over this one's environment, waited for; terminated on exit."""
    api_url, lenders_url = f"http://{LOOPBACK}:{ports.api}", f"http://{LOOPBACK}:{ports.lenders}"
    identity_url = f"http://{LOOPBACK}:{ports.identity}"
    api_env: dict[str, str] = {}
    if ports.identity != IDENTITY_PORT:
        api_env |= {
            "CREDITMESH_KYC_PROVIDER_URL": f"{identity_url}/kyc",
            "CREDITMESH_MLA_PROVIDER_URL": f"{identity_url}/mla",
        }
    lender_cmd = [sys.executable, "-m", "providers.sim", "--port", str(ports.lenders)]
    if fleet_file is not None:  # the fleet's lenders, and the API told to ask exactly them
        lender_cmd += ["--fleet", str(fleet_file)]
        api_env["CREDITMESH_HTTP_LENDERS"] = json.dumps(http_lender_settings(lenders_url, read_fleet(fleet_file)))
    identity_cmd = [sys.executable, "-m", "compliance.sim", "--port", str(ports.identity)]
    identity_cmd += ["--webhook-url", f"{api_url}/v1/kyc/webhooks"]
    with ExitStack() as stack:
        start = _starter(stack, _child_env(env, code), code, log_dir, timeout)
        lenders = start("lenders", lender_cmd, f"{lenders_url}/v1/health")
        start("identity", identity_cmd, f"{identity_url}/health")
        yield Simulators(lenders_url, identity_url, lenders, api_env)


@contextmanager
def api_service(
    port: int,
    *,
    processes: int = 1,
    env: Mapping[str, str] | None = None,
    code: Path | None = None,
    log_dir: Path | None = None,
    timeout: float = 90.0,
) -> Iterator[ApiService]:
    """The API (``api.cli serve``, with ``--processes N`` when N > 1) on ``port``, configured by ``env`` over this
    one's environment; waited for until every one of its processes answers ``/healthz``; terminated on exit."""
    url = f"http://{LOOPBACK}:{port}"
    command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port)]
    if processes > 1:
        command += ["--processes", str(processes)]
    with ExitStack() as stack:
        start = _starter(stack, _child_env(env, code), code, log_dir, timeout)
        process = start("api", command, f"{url}/healthz")
        named = {"api-1": url} if processes == 1 else _wait_processes(process, processes, timeout)
        yield ApiService(url, process, named)


@contextmanager
def platform_services(
    ports: ServicePorts,
    *,
    fleet_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    code: Path | None = None,
    log_dir: Path | None = None,
    timeout: float = 90.0,
) -> Iterator[PlatformServices]:
    """The simulators (``simulators``) and the API (``api_service``, one process), each a process configured by
    ``env`` over this one's environment, all waited for; terminated on exit, the API first. ``code`` runs them
    from another source tree; ``log_dir`` keeps each one's stderr there instead of this terminal's."""
    with (
        simulators(ports, fleet_file=fleet_file, env=env, code=code, log_dir=log_dir, timeout=timeout) as sims,
        api_service(ports.api, env=dict(env or {}) | sims.env, code=code, log_dir=log_dir, timeout=timeout) as api,
    ):
        yield PlatformServices(api.url, sims.lenders_url, sims.identity_url, api.process)


def _child_env(env: Mapping[str, str] | None, code: Path | None) -> dict[str, str]:
    child_env = os.environ | dict(env or {})
    if code is not None:
        child_env["PYTHONPATH"] = str(code)
    return child_env


def _starter(
    stack: ExitStack, child_env: dict[str, str], code: Path | None, log_dir: Path | None, timeout: float
) -> Callable[[str, list[str], str], subprocess.Popen[bytes]]:
    """A function starting one named process (stopped when ``stack`` closes) and waiting for its health URL."""

    def start(name: str, command: list[str], health_url: str) -> subprocess.Popen[bytes]:
        port = urlsplit(health_url).port
        if port is not None and _listening(port):
            raise ServicePortTaken(name, port)
        stderr: IO[bytes] | None = None
        if log_dir is not None:
            stderr = stack.enter_context((log_dir / f"{name}.log").open("ab"))
        process = subprocess.Popen(command, env=child_env, cwd=code, stderr=stderr)
        stack.callback(_stop, process)
        wait_http(health_url, process, timeout)
        return process

    return start


def _serve_children(parent: int) -> dict[int, str]:
    """The ``api.cli serve`` processes started by ``parent`` (``creditmesh serve --processes N``): pid -> port."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != parent:
                continue
            command = (stat.parent / "cmdline").read_bytes().decode().split("\0")
        except (OSError, ValueError, IndexError):
            continue
        if "serve" in command and "--port" in command:
            found[int(stat.parent.name)] = command[command.index("--port") + 1]
    return found


def _process_name_of(pid: int) -> str | None:
    """The ``CREDITMESH_PROCESS_NAME`` process ``pid`` was started with, if any (``creditmesh serve --processes``)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    prefix = b"CREDITMESH_PROCESS_NAME="
    return next((entry[len(prefix) :].decode() for entry in environ if entry.startswith(prefix)), None)


def _wait_processes(balancer: subprocess.Popen[bytes], count: int, timeout: float) -> dict[str, str]:
    """The ``count`` API processes behind ``balancer``, each waited for on its own port: name -> URL (in the order
    ``creditmesh serve`` names them, ``api-1`` first: the one running the background workers)."""
    deadline = time.monotonic() + timeout
    while len(children := _serve_children(balancer.pid)) < count:
        if time.monotonic() > deadline or balancer.poll() is not None:
            raise SystemExit(f"creditmesh serve --processes {count} did not start its processes")
        time.sleep(0.1)
    urls = []
    for pid, port in children.items():
        url = f"http://{LOOPBACK}:{port}"
        wait_http(f"{url}/healthz", balancer, max(deadline - time.monotonic(), 1.0))
        urls.append((_process_name(url, pid), url))
    return dict(sorted(urls))


def _process_name(url: str, pid: int) -> str:
    """What the process on ``url`` calls itself (``X-Creditmesh-Process``), or its pid."""
    name = httpx.get(f"{url}/healthz", timeout=10).headers.get("x-creditmesh-process")
    return name or f"pid-{pid}"


def read_fleet(path: Path) -> list[SimLender]:
    """A fleet file: a JSON list of SimLender documents (providers.sim.fleet), refused whole if one is invalid."""
    try:
        documents = json.loads(path.read_text())
        if not isinstance(documents, list) or not documents:
            raise ValueError("expected a non-empty JSON list of lenders")
        return [SimLender.model_validate(document) for document in documents]
    except (OSError, ValueError) as err:  # pydantic's ValidationError is a ValueError
        raise SystemExit(f"fleet file {path}: {err}") from err


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _listening(port: int) -> bool:
    """Whether a program accepts connections on ``port`` (loopback) now."""
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((LOOPBACK, port)) == 0


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the process for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up within {timeout} s")
