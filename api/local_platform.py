"""The platform's pieces started on this machine, one way for everyone: ``creditmesh run`` (fixed ports, until
Ctrl-C) and ``bench/quote_path.py`` (free loopback ports, a fleet at a fixed latency, an older source tree) both
start them here, so what the benchmark measures is what a user runs.

``local_chains`` starts one anvil per local chain and deploys the contract set to each; ``platform_services``
starts the simulated lenders (the default fleet or a fleet file), the simulated identity providers (KYC and MLA,
whose verdicts come back as signed webhooks to the API) and the API, each its own process, and stops them on exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO

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


@dataclass(frozen=True, slots=True)
class ServicePorts:
    """Where the API, the simulated lenders and the simulated identity providers listen (loopback)."""

    api: int = API_PORT
    lenders: int = LENDER_PORT
    identity: int = IDENTITY_PORT

    @classmethod
    def free(cls) -> ServicePorts:
        return cls(free_port(), free_port(), free_port())


@dataclass(frozen=True, slots=True)
class LocalChains:
    devnets: list[Devnet]
    deployments: dict[str, DeploymentRecord]
    #: a chains file naming the devnets, when they are not on their fixed ports (give it to the API's settings)
    chains_file: Path | None


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
def platform_services(
    ports: ServicePorts,
    *,
    fleet_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    code: Path | None = None,
    log_dir: Path | None = None,
    timeout: float = 90.0,
) -> Iterator[PlatformServices]:
    """The simulated lenders (those of ``fleet_file``, or the simulator's default fleet, which the settings' default
    lenders name), the simulated identity providers and the API (``api.cli serve``), each a process configured by
    ``env`` over this one's environment, all waited for; terminated on exit, the API first. ``code`` runs them
    from another source tree; ``log_dir`` keeps each one's stderr there instead of this terminal's."""
    api_url, lenders_url = f"http://{LOOPBACK}:{ports.api}", f"http://{LOOPBACK}:{ports.lenders}"
    identity_url = f"http://{LOOPBACK}:{ports.identity}"
    child_env = os.environ | dict(env or {})
    if code is not None:
        child_env["PYTHONPATH"] = str(code)
    if ports.identity != IDENTITY_PORT:
        child_env |= {
            "CREDITMESH_KYC_PROVIDER_URL": f"{identity_url}/kyc",
            "CREDITMESH_MLA_PROVIDER_URL": f"{identity_url}/mla",
        }
    lender_cmd = [sys.executable, "-m", "providers.sim", "--port", str(ports.lenders)]
    if fleet_file is not None:  # the fleet's lenders, and the API told to ask exactly them
        lender_cmd += ["--fleet", str(fleet_file)]
        child_env["CREDITMESH_HTTP_LENDERS"] = json.dumps(http_lender_settings(lenders_url, read_fleet(fleet_file)))
    identity_cmd = [sys.executable, "-m", "compliance.sim", "--port", str(ports.identity)]
    identity_cmd += ["--webhook-url", f"{api_url}/v1/kyc/webhooks"]
    api_cmd = [sys.executable, "-m", "api.cli", "serve", "--port", str(ports.api)]
    with ExitStack() as stack:

        def start(name: str, command: list[str], health_url: str) -> subprocess.Popen[bytes]:
            stderr: IO[bytes] | None = None
            if log_dir is not None:
                stderr = stack.enter_context((log_dir / f"{name}.log").open("wb"))
            process = subprocess.Popen(command, env=child_env, cwd=code, stderr=stderr)
            stack.callback(_stop, process)
            _wait_http(health_url, process, timeout)
            return process

        start("lenders", lender_cmd, f"{lenders_url}/v1/health")
        start("identity", identity_cmd, f"{identity_url}/health")
        api = start("api", api_cmd, f"{api_url}/healthz")
        yield PlatformServices(api_url, lenders_url, identity_url, api)


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


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
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
