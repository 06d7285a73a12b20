"""The auditor's reconciliation endpoints (in-process ASGI, real routers, PostgreSQL, a real devnet): an admin
issues an auditor key (``/v1/api-keys``), the auditor starts a run, waits for it, lists runs, pages through the
discrepancies filtered by category, and downloads the report in each format; a borrower's key is refused, and so
is a chain named twice or an empty list of chains."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from api import problems
from api.auth import Role, ensure_bootstrap_admin, issue_key
from api.reconcile_jobs import ReconciledChain, reconcile
from api.routers import api_keys, reconciliations
from api.settings import Settings
from chain.client import ChainClient
from store.compliance import AuditEntryRow
from store.db import Database
from tests.support.devnet import DeployedChain
from tests.support.reconcile import LoanMaker, index

pytestmark = pytest.mark.integration

ADMIN = "cm_admin_reconciliation_tests"


@pytest.fixture
async def api(
    postgres_schema: Callable[[str], str], ethereum_local: DeployedChain
) -> AsyncIterator[tuple[httpx.AsyncClient, Database, DeployedChain, ChainClient]]:
    database = Database(postgres_schema(f"recon_api_{os.urandom(3).hex()}"))
    database.migrate()
    ensure_bootstrap_admin(database, ADMIN)
    client = await ChainClient(ethereum_local.config).connect()
    runtime = SimpleNamespace(client=client, record=ethereum_local.record, config=ethereum_local.config)
    app = FastAPI()
    problems.install(app)
    app.include_router(api_keys.router)
    app.include_router(reconciliations.router)
    app.state.platform = SimpleNamespace(database=database, chains={"ethereum-local": runtime}, settings=Settings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test", headers={"X-API-Key": ADMIN}) as c:
        yield c, database, ethereum_local, client
    await client.close()
    database.dispose()


async def _done(client: httpx.AsyncClient, location: str, headers: dict[str, str]) -> dict[str, Any]:
    for _ in range(300):
        run: dict[str, Any] = (await client.get(location, headers=headers)).json()
        if run["status"] != "running":
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"the run did not finish: {run}")


async def test_an_auditor_runs_reads_pages_and_downloads(
    api: tuple[httpx.AsyncClient, Database, DeployedChain, ChainClient],
) -> None:
    client, database, chain, _ = api
    maker = LoanMaker(chain, database)
    start = maker.head() + 1
    ours = [maker.open(n) for n in range(2)]
    outside = [maker.open(90 + n, ours=False) for n in range(3)]
    await index(chain, database, start)

    issued = await client.post("/v1/api-keys", json={"role": "auditor", "label": "external auditor"})
    assert issued.status_code == 201, issued.text
    auditor = {"X-API-Key": issued.json()["key"]}
    borrower = {"X-API-Key": issue_key(database, Role.BORROWER, "b-1", "someone")}

    refused = await client.post("/v1/reconciliations", json={}, headers=borrower)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == problems.PROBLEM_JSON
    unknown = await client.post("/v1/reconciliations", json={"chains": ["mainnet"]}, headers=auditor)
    assert unknown.status_code == 422

    started = await client.post("/v1/reconciliations", json={"from_block": start}, headers=auditor)
    assert started.status_code == 202, started.text
    run = await _done(client, started.headers["Location"], auditor)
    assert run["status"] == "done", run
    assert run["started_by"].startswith("auditor:key_")
    assert run["counts"]["opened-without-accept"] == len(outside)
    assert run["counts"]["matched"] >= len(ours)
    assert run["chains"][0]["fromBlock"] == start

    listed = (await client.get("/v1/reconciliations", headers=auditor)).json()
    assert [item["id"] for item in listed["items"]] == [run["id"]]

    pages: list[dict[str, Any]] = []
    url: str | None = f"/v1/reconciliations/{run['id']}/discrepancies?category=opened-without-accept&limit=2"
    while url is not None:
        answer = (await client.get(url, headers=auditor)).json()
        pages.append(answer)
        url = answer["next"]
    found = [item for one in pages for item in one["items"]]
    assert len(pages) == 2
    assert sorted(item["subject"] for item in found) == sorted(f"loan #{loan.onchain_id}" for loan in outside)
    assert {item["tx_hash"] for item in found} == {loan.tx_hash for loan in outside}
    none = await client.get(f"/v1/reconciliations/{run['id']}/discrepancies?category=amount-mismatch", headers=auditor)
    assert none.json()["items"] == []
    bad = await client.get(f"/v1/reconciliations/{run['id']}/discrepancies?category=nonsense", headers=auditor)
    assert bad.status_code == 422

    html = await client.get(f"/v1/reconciliations/{run['id']}/report", headers=auditor)
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert all(loan.tx_hash in html.text for loan in outside)
    csv = await client.get(f"/v1/reconciliations/{run['id']}/report?format=csv", headers=auditor)
    assert csv.text.splitlines()[0].startswith("chain,category,subject")
    assert len(csv.text.splitlines()) == 1 + len(outside)
    as_json = (await client.get(f"/v1/reconciliations/{run['id']}/report?format=json", headers=auditor)).json()
    assert as_json["digest"] == run["digest"]
    missing = await client.get("/v1/reconciliations/nope/report", headers=auditor)
    assert missing.status_code == 404


async def test_a_chain_named_twice_or_none_named_is_refused(
    api: tuple[httpx.AsyncClient, Database, DeployedChain, ChainClient],
) -> None:
    """``{"chains": ["x", "x"]}`` ran the chain twice in one run: its summary and discrepancies stored twice (and
    ``audit verify`` later reported the untouched run as altered, its summaries keyed by chain). ``[]`` ran every
    chain, as null does; it is refused as naming none."""
    client, database, chain, chain_client = api
    for chains, why in (
        ([chain.name, chain.name], f"each chain once: ['{chain.name}'] named more than once"),
        ([], "at least 1 item"),
    ):
        refused = await client.post("/v1/reconciliations", json={"chains": chains})
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == problems.PROBLEM_JSON
        assert why in refused.json()["detail"]
    assert (await client.get("/v1/reconciliations")).json()["items"] == []  # no run started

    twice = ReconciledChain(chain_client, chain.record)
    with pytest.raises(ValueError, match="a run reads each chain once"):
        await reconcile(database, [twice, twice], "test")
    (failed,) = (await client.get("/v1/reconciliations")).json()["items"]
    assert failed["status"] == "failed"
    assert failed["chains"] == []
    with database.unit_of_work() as uow:  # a failed audit is itself in the audit log: who ran what, and why it failed
        (entry,) = uow.session.scalars(select(AuditEntryRow).where(AuditEntryRow.subject == failed["id"]))
    assert entry.kind == "reconciliation-failed"
    assert entry.data == {"error": f"ValueError: a run reads each chain once; given ['{chain.name}', '{chain.name}']"}


async def test_a_start_past_the_confirmed_head_is_refused_and_no_run_stored(
    api: tuple[httpx.AsyncClient, Database, DeployedChain, ChainClient],
) -> None:
    """A ``from_block`` no chain has reached read no block, and the run was stored and audited as clean: an auditor
    who mistyped the start got a clean report of nothing. Refused as the CLI refuses it, before a run is stored."""
    client, _database, chain, chain_client = api
    head = int(await chain_client.rpc("eth_blockNumber"), 16)
    refused = await client.post("/v1/reconciliations", json={"from_block": head + 1_000})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == problems.PROBLEM_JSON
    assert (
        f"from block {head + 1_000} is past the chain's head ({chain.name}'s confirmed head is "
        in (refused.json()["detail"])
    )
    assert (await client.get("/v1/reconciliations")).json()["items"] == []  # no run stored
