"""The platform as a user meets it: the simulated lender, the simulated identity providers (KYC and MLA) and the API
each in its own process, over real HTTP, against the session's devnets."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from api.bootstrap import write_chains_file
from api.demo import DEMO_PROFILE, onboard
from chain.devnet import free_port
from chain.signers import Role, devnet_signer
from providers.sim.fleet import DEFAULT_FLEET, SimLender, http_lender_settings
from store.aggregator import OfferNonceRow
from store.db import Database
from tests.support.devnet import DeployedChain

ADMIN_KEY = "cm_admin_test_key"
GOOD_PROFILE = DEMO_PROFILE
LENDER_SECRET = "test-lender-secret"
KYC_SECRET = "test-kyc-webhook-secret"
MLA_SECRET = "test-mla-operator-secret"


# On active duty for the simulated MLA service: a covered borrower under the Military Lending Act.
COVERED_SERVICEMEMBER = {
    "last_name": "Hopper",
    "date_of_birth": "1985-12-10",
    "ssn_or_dod_id": "123456789",
    "start": "2020-01-01",
}


@dataclass
class RunningPlatform:
    api_url: str
    lender_url: str
    data_dir: Path
    admin_key: str = ADMIN_KEY
    database_url: str = ""
    api: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: API processes behind the local balancer (``creditmesh serve --processes``); 1: one process, no balancer
    processes: int = 1

    def restart_api(self, extra_env: dict[str, str] | None = None) -> None:
        """Start the API again on its port (after the test killed it, or stopping it first), with ``extra_env``."""
        if self.api is not None and self.api.poll() is None:
            self.api.terminate()
            self.api.wait(timeout=30)
        self.env = self.env | (extra_env or {})
        self.api = _start_api(self.env, int(self.api_url.rsplit(":", 1)[1]), self.data_dir, self.processes)
        _wait(f"{self.api_url}/healthz", self.api)

    def wait_api_exit(self, timeout: float = 60) -> int:
        """The API's exit code once it has stopped (a kill point SIGKILLs it: -9)."""
        assert self.api is not None
        return self.api.wait(timeout=timeout)

    def client(self, api_key: str) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers={"X-API-Key": api_key}, timeout=60)

    def onboard(
        self,
        wallet: str,
        jurisdiction: str = "US-FL",
        profile: dict[str, Any] | None = None,
        kyc: dict[str, Any] | None = None,
    ) -> str:
        """Register a borrower (admin), pass KYC and store a credit profile; its API key."""
        return onboard(self.api_url, self.admin_key, wallet, jurisdiction, profile, kyc)


def _wait(url: str, process: subprocess.Popen[bytes], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not up after {timeout} s")


def _start_api(env: dict[str, str], port: int, data_dir: Path, processes: int = 1) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--processes", str(processes)]
    with (data_dir / "api.log").open("ab") as api_log:
        return subprocess.Popen(command, env=env, stderr=api_log)


def offer_nonces_from(url: str, chains: dict[str, DeployedChain], first: int) -> None:
    """Other platforms of this session sign offers on the same devnets with the same quote signer (a counter per
    database): this database counts from ``first`` on each chain where it has no counter yet."""
    database = Database(url)
    database.migrate()
    signer = devnet_signer(Role.QUOTE_SIGNER).address
    with database.unit_of_work() as uow:
        for chain in chains.values():
            key = {"chain_id": chain.chain_id, "contract": chain.record.address("CreditAggregator"), "signer": signer}
            if uow.session.get(OfferNonceRow, key) is None:
                uow.session.add(OfferNonceRow(**key, next_nonce=first))
        uow.commit()
    database.dispose()


@contextmanager
def running_platform(
    chains: dict[str, DeployedChain],
    data_dir: Path,
    database_url: str = "",
    *,
    fleet: list[SimLender] | None = None,
    settings: dict[str, str] | None = None,
    workers: str = "none",
    lender_timeout: float | None = None,
    processes: int = 1,
) -> Iterator[RunningPlatform]:
    """The platform's processes; ``fleet`` replaces the one simulated bank, ``settings`` adds or overrides
    ``CREDITMESH_*`` variables of the API; background workers (``CREDITMESH_WORKERS``) run only when the test opts
    in with ``workers``; ``processes`` API processes behind the local balancer (PostgreSQL only)."""
    lender_port, identity_port, api_port = free_port(), free_port(), free_port()
    # Every platform of a session signs offers on the same devnets with the same quote signer: each counts its
    # offer nonces from its own random start (unless the caller chose one), so the contract never sees one twice.
    own_database = database_url or f"sqlite:///{(data_dir / 'creditmesh.db').resolve()}"
    offer_nonces_from(own_database, chains, 2**42 + secrets.randbelow(2**20) * 2**20)
    chains_file = data_dir / "chains.json"
    write_chains_file(chains_file, [chain.config for chain in chains.values()])
    deployments = data_dir / "deployments"
    deployments.mkdir(parents=True, exist_ok=True)
    for chain in chains.values():
        chain.record.save(deployments / f"{chain.name}.json")
    lender_url = f"http://127.0.0.1:{lender_port}"  # the simulated lenders' server, each under /lenders/{id}
    # the one simulated bank registers with the made-up legal name and address `make run`'s has
    named = {"legal_name": DEFAULT_FLEET[0].legal_name, "address": DEFAULT_FLEET[0].address}
    fleet = fleet or [SimLender(lender_id="sim-bank", secret=LENDER_SECRET, **named)]
    fleet_file = data_dir / "lenders.json"
    fleet_file.write_text(json.dumps([lender.model_dump(mode="json") for lender in fleet]))
    covered_file = data_dir / "mla-covered.json"
    covered_file.write_text(json.dumps([COVERED_SERVICEMEMBER]))
    identity_url = f"http://127.0.0.1:{identity_port}"
    env = (
        os.environ
        | {
            "CREDITMESH_DATA_DIR": str(data_dir),
            "CREDITMESH_CHAINS_FILE": str(chains_file),
            "CREDITMESH_ADMIN_API_KEY": ADMIN_KEY,
            # the simulated lenders listen on loopback; every other internal address stays refused
            "CREDITMESH_OUTBOUND_ALLOWED_NETWORKS": json.dumps(["127.0.0.0/8"]),
            "CREDITMESH_HTTP_LENDERS": json.dumps(
                [
                    entry | ({"timeout_seconds": lender_timeout} if lender_timeout else {})
                    for entry in http_lender_settings(lender_url, fleet)
                ]
            ),
            "CREDITMESH_DATABASE_URL": database_url,
            "CREDITMESH_WORKERS": workers,
            "CREDITMESH_VELOCITY_PER_BORROWER": "25",
            "CREDITMESH_VELOCITY_PER_WALLET": "25",
            "CREDITMESH_VELOCITY_PER_IP": "10000",
            "CREDITMESH_KYC_PROVIDER_URL": f"{identity_url}/kyc",
            "CREDITMESH_KYC_WEBHOOK_SECRET": KYC_SECRET,
            "CREDITMESH_MLA_PROVIDER_URL": f"{identity_url}/mla",
            "CREDITMESH_MLA_PROVIDER_SECRET": MLA_SECRET,
        }
        | (settings or {})
    )
    lender = subprocess.Popen(
        [sys.executable, "-m", "providers.sim", "--port", str(lender_port), "--fleet", str(fleet_file)],
        env=env,
    )
    identity = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "compliance.sim",
            "--port",
            str(identity_port),
            "--webhook-url",
            f"http://127.0.0.1:{api_port}/v1/kyc/webhooks",
            "--kyc-secret",
            KYC_SECRET,
            "--mla-secret",
            MLA_SECRET,
            "--mla-covered",
            str(covered_file),
        ],
        env=env,
    )
    running = RunningPlatform(
        f"http://127.0.0.1:{api_port}",
        lender_url,
        data_dir,
        database_url=database_url,
        env=dict(env),
        processes=processes,
    )
    running.api = _start_api(env, api_port, data_dir, processes)
    try:
        _wait(f"{lender_url}/v1/health", lender)
        _wait(f"{identity_url}/health", identity)
        _wait(f"http://127.0.0.1:{api_port}/healthz", running.api)
        yield running
    finally:
        for process in (running.api, identity, lender):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
