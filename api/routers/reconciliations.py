"""Reconciliation for auditors (and admins): start a run over the platform's chains, list runs, read a run and its
discrepancies (filtered by chain and category, a page at a time), download its report as JSON, CSV or a
self-contained HTML page. A run goes on in the background; its status says when it is done."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, Field, StrictBool, field_validator

from api import refusals
from api.deps import AuditorPrincipal, PlatformDep
from api.idempotency import Idempotent
from api.input_types import NonNegativeJsonInteger
from api.pagination import DEFAULT_LIMIT, CursorParam, Limit, Page, decode_cursor, page
from api.reconcile_jobs import PastTheHead, ReconciledChain, load_report, reconcile, refuse_past_the_head, start_run
from compliance.reconcile import Category
from compliance.reconcile_report import to_csv, to_html, to_json
from compliance.reconcile_runs import ReconciliationRun, StoredDiscrepancy
from store.compliance import DiscrepancyFilter
from store.reconciliation_runs import SqlReconciliationRuns

router = APIRouter(prefix="/v1/reconciliations", tags=["reconciliations"])
RUNS_CURSOR, DISCREPANCIES_CURSOR = "reconciliations", "discrepancies"  # each list's cursors name it


class ReconciliationIn(BaseModel):
    chains: Annotated[list[str], Field(min_length=1, json_schema_extra={"uniqueItems": True})] | None = Field(
        default=None, description="chain names, each once; null or absent: every chain"
    )
    from_block: NonNegativeJsonInteger | None = Field(
        default=None, description="first block; default: each chain's deployment"
    )
    since_last: StrictBool = Field(default=False, description="start after the newest finished run's range")

    @field_validator("chains")
    @classmethod
    def _each_chain_once(cls, chains: list[str] | None) -> list[str] | None:
        """A chain named twice would be read and stored twice in one run (its summary and discrepancies doubled)."""
        if chains is not None and (repeated := sorted({name for name in chains if chains.count(name) > 1})):
            raise ValueError(f"each chain once: {repeated} named more than once")
        return chains


class ReconciliationOut(BaseModel):
    id: str
    started_by: str
    status: str = Field(description="running | done | failed")
    created_at: str
    finished_at: str | None
    digest: str | None = Field(description="0x keccak256 of the canonical JSON of the result")
    counts: dict[str, int] = Field(description="per category, every chain")
    chains: list[dict[str, Any]] = Field(description="per chain: block range, facts read, counts, pool flows")
    error: str | None = None


class DiscrepancyOut(BaseModel):
    id: str
    chain: str
    category: Category
    subject: str
    what: str
    detail: str
    tx_hash: str | None
    block_number: int | None
    record_ref: str | None


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    HTML = "html"


_MEDIA = {
    ReportFormat.JSON: "application/json",
    ReportFormat.CSV: "text/csv; charset=utf-8",
    ReportFormat.HTML: "text/html; charset=utf-8",
}


def _out(run: ReconciliationRun) -> ReconciliationOut:
    return ReconciliationOut(
        id=run.id,
        started_by=run.started_by,
        status=run.status,
        created_at=run.created_at.isoformat(),
        finished_at=None if run.finished_at is None else run.finished_at.isoformat(),
        digest=run.digest,
        counts=dict(run.counts),
        chains=list(run.chains),
        error=run.error,
    )


def _discrepancy_out(row: StoredDiscrepancy) -> DiscrepancyOut:
    item = row.as_json()
    return DiscrepancyOut(
        id=item["id"],
        chain=item["chain"],
        category=Category(item["category"]),
        subject=item["subject"],
        what=item["what"],
        detail=item["detail"],
        tx_hash=item["txHash"],
        block_number=item["blockNumber"],
        record_ref=item["recordRef"],
    )


def _get_run(platform: Any, run_id: str) -> ReconciliationRun:
    run = SqlReconciliationRuns(platform.database).get(run_id)
    if run is None:
        raise refusals.RECONCILIATION_NOT_FOUND(f"no reconciliation {run_id}")
    return run


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReconciliationOut,
    responses={
        202: {
            "headers": {"Location": {"description": "the run: /v1/reconciliations/{id}", "schema": {"type": "string"}}}
        }
    },
    dependencies=[Idempotent],
)
async def start_reconciliation(
    body: ReconciliationIn, request: Request, response: Response, principal: AuditorPrincipal, platform: PlatformDep
) -> ReconciliationOut:
    """Start a run over the chosen chains (all by default); it goes on in the background — poll the run, whose
    status becomes `done` (or `failed`, with the error). 422 for a chain the platform does not serve, a chain named
    twice, an empty list (null or absent: every chain), or a `from_block` past a chain's confirmed head (no block to
    read: nothing is stored); 503 `chain-unavailable` (with `Retry-After`) when a chain's head cannot be read."""
    wanted = list(platform.chains) if body.chains is None else body.chains
    unknown = sorted(set(wanted) - set(platform.chains))
    if unknown:
        raise refusals.UNKNOWN_CHAIN(f"unknown chains {unknown}; known: {list(platform.chains)}")
    chains = [ReconciledChain(platform.chains[name].client, platform.chains[name].record) for name in wanted]
    if body.from_block is not None and not body.since_last:  # before a run is stored: nothing to read is no run
        try:
            await refuse_past_the_head([chain.client for chain in chains], body.from_block)
        except PastTheHead as err:
            raise refusals.FROM_BLOCK_PAST_HEAD(str(err)) from err
    started_by = f"{principal.role.value}:{principal.key_id or principal.subject_id or 'unknown'}"
    run_id = await asyncio.to_thread(start_run, platform.database, started_by)
    task = asyncio.create_task(
        reconcile(
            platform.database, chains, started_by, from_block=body.from_block, since_last=body.since_last, run_id=run_id
        ),
        name=f"reconciliation-{run_id}",
    )
    running: set[asyncio.Task[Any]] = request.app.state.__dict__.setdefault("reconciliations", set())
    running.add(task)
    task.add_done_callback(running.discard)
    task.add_done_callback(lambda done: done.cancelled() or done.exception())  # stored on the run, not lost
    response.headers["Location"] = f"/v1/reconciliations/{run_id}"
    return _out(await asyncio.to_thread(_get_run, platform, run_id))


@router.get("", response_model=Page[ReconciliationOut])
async def list_reconciliations(
    request: Request,
    _: AuditorPrincipal,
    platform: PlatformDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[ReconciliationOut]:
    """Every run, newest first, a page at a time."""
    after = decode_cursor(RUNS_CURSOR, cursor)

    # a report read: the read-only URL when one is set
    found = await asyncio.to_thread(SqlReconciliationRuns(platform.database).page, after, limit + 1)
    return page(request, RUNS_CURSOR, found, limit, lambda row: (row.created_at, row.id), _out)


@router.get("/{run_id}", response_model=ReconciliationOut)
async def get_reconciliation(run_id: str, _: AuditorPrincipal, platform: PlatformDep) -> ReconciliationOut:
    """One run: its status, who ran it, each chain's block range and counts, the digest of its result."""
    return _out(await asyncio.to_thread(_get_run, platform, run_id))


@router.get("/{run_id}/discrepancies", response_model=Page[DiscrepancyOut])
async def list_discrepancies(
    run_id: str,
    request: Request,
    _: AuditorPrincipal,
    platform: PlatformDep,
    chain: Annotated[str | None, Query(description="only this chain's")] = None,
    category: Annotated[Category | None, Query(description="only this category")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[DiscrepancyOut]:
    """The run's discrepancies in the order found, filtered by chain and category, a page at a time."""
    run = await asyncio.to_thread(_get_run, platform, run_id)
    after = decode_cursor(DISCREPANCIES_CURSOR, cursor)
    wanted = DiscrepancyFilter(chain, None if category is None else category.value)

    runs = SqlReconciliationRuns(platform.database)
    found = await asyncio.to_thread(runs.discrepancies, run.id, wanted, after, limit + 1)
    return page(request, DISCREPANCIES_CURSOR, found, limit, lambda row: (row.created_at, row.id), _discrepancy_out)


@router.get(
    "/{run_id}/report",
    responses={200: {"content": {"application/json": {}, "text/csv": {}, "text/html": {}}}},
)
async def download_report(
    run_id: str,
    _: AuditorPrincipal,
    platform: PlatformDep,
    format: Annotated[ReportFormat, Query(description="json, csv or html")] = ReportFormat.HTML,
) -> Response:
    """The run's report: JSON (everything), CSV (the discrepancy table) or one self-contained HTML page to open
    offline, each item linked to its transaction (the chain's explorer URL template) and its record."""
    explorers = {name: chain.config.explorer_tx_url for name, chain in platform.chains.items()}
    report = await asyncio.to_thread(load_report, platform.database, run_id, explorers)
    if report is None:
        raise refusals.RECONCILIATION_NOT_FOUND(f"no reconciliation {run_id}")
    render = {ReportFormat.JSON: to_json, ReportFormat.CSV: to_csv, ReportFormat.HTML: to_html}[format]
    filename = f"reconciliation-{run_id}.{format.value}"
    return Response(
        render(report),
        media_type=_MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
