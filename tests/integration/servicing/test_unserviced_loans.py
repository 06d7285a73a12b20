"""The platform started after a new deployment of the contracts on its chain, its ledger still holding a loan of the
earlier deployment open: nothing services that loan (the chain's deployment record names the new CreditAggregator),
and the platform says so. The API process (its own process, over HTTP, on PostgreSQL and on SQLite) logs one error
at start naming the chain, the count and the earlier CreditAggregator, its ``/metrics`` carries the gauge
``creditmesh_unserviced_loans``, and the admins' ``GET /health`` shows the chain's ``earlier_deployment_loans``
``degraded``, and the page with it. A loan of the earlier deployment closed before the switch and a loan of the new
one do not count. Once the earlier loan is wound down (closed on its deployment, the ledger with it), a restarted
API says nothing, the gauge is 0 and ``/health`` is ok. ``creditmesh index`` and ``creditmesh keeper`` say it at their
start too. Before (fixed 2026-11-29) the loan went unserviced in
silence."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from web3 import Web3

from api.settings import Settings
from api.workers import index_chains, keep_chains
from chain.config import LOCAL_CHAINS
from chain.devnet import start_devnet
from contracts.deploy import deploy_to_devnet
from store.db import Database
from tests.contracts.harness import USDC
from tests.integration.servicing.conftest import borrower_with_collateral, record_in_ledger
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform, running_platform

pytestmark = pytest.mark.integration

LOGGER = "aggregator.earlier_deployments"


@pytest.fixture(scope="module")
def deployments(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DeployedChain, DeployedChain]]:
    """One devnet of the module's own with the devnet contract set deployed twice: the earlier deployment and the
    new one (which the platform's deployment record names)."""
    devnet = start_devnet(LOCAL_CHAINS[0], port=0)
    try:
        folder = tmp_path_factory.mktemp("unserviced")
        w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
        earlier = deploy_to_devnet(devnet.name, devnet.chain_id, devnet.rpc_url, folder / "earlier.json")
        new = deploy_to_devnet(devnet.name, devnet.chain_id, devnet.rpc_url, folder / "new.json")
        yield DeployedChain(devnet, earlier, w3), DeployedChain(devnet, new, w3)
    finally:
        devnet.stop()


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(
    request: pytest.FixtureRequest, postgres_schema: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> str:
    if request.param == "postgresql":
        return postgres_schema("unserviced_loans")
    return f"sqlite:///{(tmp_path_factory.mktemp('unserviced-sqlite') / 'creditmesh.db').resolve()}"


class _Loan:
    """A pool loan opened on one deployment and recorded in the ledger, as the indexer did while it was served."""

    def __init__(self, chain: DeployedChain, database: Database) -> None:
        self.chain, self.database = chain, database
        self.harness, self.borrower = borrower_with_collateral(chain)
        self.ref, receipt = self.harness.open_loan(self.borrower, principal=1_000 * USDC, originationFee=0)
        record_in_ledger(database, chain, receipt)

    def close(self) -> None:
        """The borrower repays all and closes it on its deployment, recorded in the ledger."""
        self.harness.fund(self.borrower.address, usdc=100 * USDC)  # the interest on top of the principal
        receipt = self.harness.send(self.harness.aggregator.functions.close(self.ref), self.borrower)
        record_in_ledger(self.database, self.chain, receipt)


def _errors(log: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The error entries of ``LOGGER`` in the API's log after ``offset`` bytes."""
    found = []
    for line in log.read_bytes()[offset:].decode(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("logger") == LOGGER and entry.get("level") == "error":
            found.append(entry)
    return found


def _gauge(platform: RunningPlatform, chain_id: int) -> float | None:
    metrics = httpx.get(f"{platform.api_url}/metrics", timeout=30)
    assert metrics.status_code == 200
    sample = f'creditmesh_unserviced_loans{{chain="{chain_id}"}} '
    values = [float(line[len(sample) :]) for line in metrics.text.splitlines() if line.startswith(sample)]
    return values[0] if values else None


def _health(platform: RunningPlatform) -> dict[str, Any]:
    with platform.client(platform.admin_key) as admin:
        response = admin.get("/health")
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def _worker_commands_start(data_dir: Path, database_url: str) -> None:
    """``creditmesh index`` and ``creditmesh keeper`` on the platform's settings, stopped as soon as started."""
    settings = Settings(data_dir=data_dir, chains_file=data_dir / "chains.json", database_url=database_url)

    async def start_and_stop() -> None:
        stopped = asyncio.Event()
        stopped.set()
        await index_chains(settings, None, stopped)
        await keep_chains(settings, None, stopped)

    asyncio.run(start_and_stop())


def test_an_open_loan_of_an_earlier_deployment_is_said_at_start_in_the_gauge_and_on_health(
    deployments: tuple[DeployedChain, DeployedChain],
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    earlier, new = deployments
    database = Database(database_url)
    database.migrate()
    try:
        unserviced = _Loan(earlier, database)
        _Loan(earlier, database).close()  # wound down before the switch: not counted
        _Loan(new, database)  # the served deployment's own: not counted
        earlier_aggregator = earlier.record.address("CreditAggregator")
        data_dir = tmp_path_factory.mktemp("unserviced-platform")
        with running_platform({new.name: new}, data_dir, database_url) as platform:
            alerts = _errors(data_dir / "api.log")
            gauge = _gauge(platform, new.chain_id)
            degraded = _health(platform)
            with caplog.at_level(logging.ERROR, LOGGER):
                _worker_commands_start(data_dir, database_url)

            unserviced.close()  # wound down on its deployment after all, the ledger with it
            offset = (data_dir / "api.log").stat().st_size
            platform.restart_api()
            quiet = _errors(data_dir / "api.log", offset)
            cleared = _gauge(platform, new.chain_id)
            ok = _health(platform)
    finally:
        database.dispose()

    assert len(alerts) == 1, alerts
    message = alerts[0]["message"]
    assert f"1 loan(s) of an earlier deployment of the contracts on {new.name}" in message
    assert earlier_aggregator in message
    assert "NOT serviced" in message
    assert "docs/servicing.md" in message
    assert gauge == 1
    workers = [record.getMessage() for record in caplog.records if record.name == LOGGER]
    assert workers == [message, message], "creditmesh index and creditmesh keeper each say it at their start"
    entry = degraded["chains"][new.name]["earlier_deployment_loans"]
    assert entry == {"count": 1, "contracts": {earlier_aggregator: 1}, "status": "degraded"}
    assert degraded["chains"][new.name]["ok"] is True, "the chain's RPC is fine: its ledger is not"
    assert degraded["status"] == "degraded"

    assert quiet == []
    assert cleared == 0
    assert ok["chains"][new.name]["earlier_deployment_loans"] == {"count": 0, "contracts": {}, "status": "ok"}
    assert ok["status"] == "ok", ok
