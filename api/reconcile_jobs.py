"""A reconciliation run at the edge: read each chain (``compliance.reconcile_chain``), read our records
(``store.reconcile``), match them (``compliance.reconcile``), store the run with its discrepancies and record it in
the audit log — run, discrepancies and audit entry in one transaction. Used by ``creditmesh reconcile`` and the
auditor endpoints."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from eth_utils.address import to_checksum_address

from chain.client import ChainClient
from chain.deployment import DeploymentRecord
from chain.errors import without_urls
from chain.timelock import TimelockCall
from compliance.audit import AuditKind
from compliance.reconcile import ChainResult, ChainScope, Records, reconcile_chain, result_digest
from compliance.reconcile_chain import ChainRead, confirmed_head, read_chain
from compliance.reconcile_report import RunReport
from contracts.governance.catalog import decode
from store.compliance import SqlAuditLog, SqlReconciliationRepository
from store.db import Database
from store.reconcile import chain_records
from store.reconciliation_runs import SqlReconciliationRuns

Progress = Callable[[ChainScope, int], None]
"""Called with a chain's scope and the last block read so far."""


@dataclass(frozen=True, slots=True)
class ReconciledChain:
    client: ChainClient
    record: DeploymentRecord


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run_id: str
    digest: str
    results: list[ChainResult]

    @property
    def facts(self) -> int:
        return sum(result.facts for result in self.results)

    @property
    def discrepancies(self) -> int:
        return sum(len(result.items) for result in self.results)


def start_run(database: Database, started_by: str) -> str:
    run_id = str(uuid.uuid4())
    with database.unit_of_work() as uow:
        SqlReconciliationRepository(uow.session).start(run_id, started_by, datetime.now(UTC))
        uow.commit()
    return run_id


def last_blocks(database: Database, chains: Sequence[str] = ()) -> dict[str, int]:
    """Each of ``chains``' last reconciled block, from the newest finished run that read it."""
    with database.unit_of_work() as uow:
        return SqlReconciliationRepository(uow.session).last_ranges(chains)


class PastTheHead(ValueError):
    """A run's ``from_block`` is past a chain's confirmed head: the range has no block to reconcile."""


async def refuse_past_the_head(clients: Sequence[ChainClient], from_block: int) -> None:
    """``PastTheHead`` naming each chain whose confirmed head (the last block a run reads) is before ``from_block``:
    checked before a run is stored, which would otherwise report a range of no block as clean."""
    past = []
    for client in clients:
        confirmed = confirmed_head(int(await client.rpc("eth_blockNumber"), 16), client.config.confirmations)
        if from_block > confirmed:
            past.append(f"{client.config.name}'s confirmed head is {confirmed}")
    if past:
        raise PastTheHead(f"from block {from_block} is past the chain's head ({'; '.join(past)}): no block to read")


async def reconcile(
    database: Database,
    chains: Sequence[ReconciledChain],
    started_by: str,
    *,
    from_block: int | None = None,
    since_last: bool = False,
    to_block: int | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
) -> RunOutcome:
    """One run over ``chains`` from ``from_block`` (default: each chain's deployment; ``since_last``: each chain
    after the range of the newest finished run that read it) to ``to_block`` (default: the confirmed head). A
    failure is stored on the run and raised; so is a chain given twice (``ValueError``)."""
    run: str = run_id if run_id is not None else await asyncio.to_thread(start_run, database, started_by)
    try:
        names = [chain.record.chain_name for chain in chains]
        if len(set(names)) != len(names):  # read and stored twice, its items doubled: refused, stored as failed
            raise ValueError(f"a run reads each chain once; given {names}")
        starts = await asyncio.to_thread(last_blocks, database, names) if since_last else {}
        reads = await asyncio.gather(
            *(
                read_chain(
                    chain.client,
                    chain.record,
                    starts[chain.record.chain_name] + 1 if chain.record.chain_name in starts else from_block,
                    to_block,
                    progress=progress,
                )
                for chain in chains
            )
        )
        outcome = await asyncio.to_thread(_match_and_store, database, run, started_by, chains, list(reads))
    except BaseException as err:
        # the text as the run row and the append-only audit log keep it: no URL's path, query or user information
        await asyncio.to_thread(_fail, database, run, without_urls(f"{type(err).__name__}: {err}"))
        raise
    return outcome


def _match_and_store(
    database: Database, run_id: str, started_by: str, chains: Sequence[ReconciledChain], reads: list[ChainRead]
) -> RunOutcome:
    now = datetime.now(UTC)
    with database.unit_of_work() as uow:
        results = [
            reconcile_chain(
                read.scope,
                read.facts(),
                decoded_again(
                    chain.record,
                    chain_records(
                        uow.session,
                        chain.record.chain_id,
                        chain.record.address("CreditAggregator"),
                        chain.record.address("CollateralManager"),
                    ),
                ),
                read.code,
                read.senders,
            )
            for chain, read in zip(chains, reads, strict=True)
        ]
        digest = result_digest(results)
        run = SqlReconciliationRepository(uow.session).finish(run_id, results, digest, now)
        SqlAuditLog(uow.session).append(
            AuditKind.RECONCILIATION,
            run_id,
            {
                "startedBy": started_by,
                "digest": digest,
                "counts": dict(run.counts),
                "chains": [
                    {"chain": r.scope.chain_name, "fromBlock": r.scope.from_block, "toBlock": r.scope.to_block}
                    for r in results
                ],
            },
            now,
        )
        uow.commit()
    return RunOutcome(run_id, digest, results)


def decoded_again(record: DeploymentRecord, records: Records) -> Records:
    """``records`` with each proposal's calls decoded again from their calldata by the deployments record (as
    ``creditmesh admin`` decoded them when it proposed), for the run to compare with the recorded text."""
    proposals = [
        replace(proposal, decoded_again=[_decoded(record, call) for call in proposal.calls])
        for proposal in records.proposals
    ]
    return replace(records, proposals=proposals)


def _decoded(record: DeploymentRecord, call: Mapping[str, Any]) -> str:
    try:
        target, data = to_checksum_address(str(call["target"])), bytes.fromhex(str(call["data"]).removeprefix("0x"))
        return decode(record, TimelockCall(target, data, int(call["value"])))
    except (KeyError, ValueError, TypeError) as err:  # a recorded call that is no call: its text differs anyway
        return f"no call ({type(err).__name__})"


def _fail(database: Database, run_id: str, error: str) -> None:
    """The run marked failed, and its failure an audit log entry in the same transaction (who would otherwise know
    an audit was attempted and failed?)."""
    now = datetime.now(UTC)
    with database.unit_of_work() as uow:
        if SqlReconciliationRepository(uow.session).fail(run_id, error, now):
            SqlAuditLog(uow.session).append(AuditKind.RECONCILIATION_FAILED, run_id, {"error": error[:512]}, now)
        uow.commit()


def load_report(database: Database, run_id: str, explorers: dict[str, str | None]) -> RunReport | None:
    """A stored run with every discrepancy, ready to render (``compliance.reconcile_report``); None if unknown."""
    found = SqlReconciliationRuns(database).report(run_id)  # a report read: the read-only URL when one is set
    if found is None:
        return None
    run, items = found
    return RunReport(
        run.id,
        run.started_by,
        run.created_at.isoformat(),
        None if run.finished_at is None else run.finished_at.isoformat(),
        run.status,
        run.digest,
        run.chains,
        run.counts,
        [item.as_json() for item in items],
        explorers,
    )
