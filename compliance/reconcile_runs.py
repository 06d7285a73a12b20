"""Reconciliation runs as stored: a run's summary and its discrepancies as plain values, for the API's lists and the
report (``compliance.reconcile_report``), and the check that a stored run is still the result it was audited with
(``run_tampering``, run by ``creditmesh audit verify``). Read through ``store.reconciliation_runs``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from compliance.canonical import canonical_json, keccak256


@dataclass(frozen=True, slots=True)
class ReconciliationRun:
    id: str
    started_by: str
    status: str  # running | done | failed
    created_at: datetime
    finished_at: datetime | None
    digest: str | None  # 0x keccak256 of the canonical JSON of the result
    counts: dict[str, int]  # per category, every chain
    chains: list[dict[str, Any]]  # per chain: block range, facts read, counts, pool flows
    error: str | None = None


@dataclass(frozen=True, slots=True)
class StoredDiscrepancy:
    """One discrepancy of a run: ``id`` is the run's id and the item's position (its order); ``created_at`` is
    the run's."""

    id: str
    created_at: datetime
    chain_name: str
    category: str
    subject: str
    what: str
    detail: str
    tx_hash: str | None
    block_number: int | None
    record_ref: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chain": self.chain_name,
            "category": self.category,
            "subject": self.subject,
            "what": self.what,
            "detail": self.detail,
            "txHash": self.tx_hash,
            "blockNumber": self.block_number,
            "recordRef": self.record_ref,
        }


def stored_digest(run: ReconciliationRun, items: Sequence[StoredDiscrepancy]) -> str:
    """The digest of a stored run's result recomputed from what is stored — each chain's summary and its
    discrepancies in their order — as ``compliance.reconcile.result_digest`` made it from the results."""
    by_chain: dict[str, list[dict[str, Any]]] = {}
    for discrepancy in items:
        fields = discrepancy.as_json()
        del fields["id"]
        by_chain.setdefault(discrepancy.chain_name, []).append(fields)
    body: list[dict[str, Any]] = [
        {"summary": summary, "items": by_chain.pop(str(summary.get("chain")), [])} for summary in run.chains
    ]
    body.extend({"summary": None, "items": rest} for rest in by_chain.values())  # of a chain no summary names
    return "0x" + keccak256(canonical_json(body)).hex()


def run_tampering(
    run: ReconciliationRun | None, items: Sequence[StoredDiscrepancy], entries: Sequence[Mapping[str, Any]]
) -> list[str]:
    """How a run as stored differs from the result it was audited with (``entries``: the data of each of its
    ``reconciliation`` audit entries in the log's order, none when the log has none); empty when it holds. ``run``
    None: the log records a run that is not stored. A run the log does not record and that is not ``done`` (still
    running, or failed) has no result to check; one the log records finished must still be stored ``done`` with that
    result — marked failed or deleted, it would otherwise leave the check with its altered result. A run is finished
    once, so it has one entry: a later one (written to match an altered result) is reported, and the run is checked
    against the first."""
    problems: list[str] = []
    if len(entries) > 1:
        problems.append(
            f"the audit log records it {len(entries)} times (a later entry written outside a run); checked against "
            "the first"
        )
    if run is None:
        return [*problems, "the audit log records it finished, but no such run is stored (deleted)"]
    if not entries and run.status != "done":
        return problems
    if run.status != "done":
        problems.append(f"the audit log records it finished, but it is stored as {run.status} (altered)")
    if stored_digest(run, items) != run.digest:
        problems.append("its stored chain summaries and discrepancies do not hash to its digest (altered)")
    if not entries:
        problems.append("no audit log entry records it (the entry deleted, or the run written outside a run)")
        return problems
    audited = entries[0]
    if audited.get("digest") != run.digest:
        problems.append(f"its digest {run.digest} is not the audit log's {audited.get('digest')} (rewritten)")
    if dict(audited.get("counts", {})) != dict(run.counts):
        problems.append("its counts per category are not the audit log's (altered)")
    ranges = [(c.get("chain"), c.get("fromBlock"), c.get("toBlock")) for c in audited.get("chains", [])]
    if ranges != [(c.get("chain"), c.get("fromBlock"), c.get("toBlock")) for c in run.chains]:
        problems.append("its chains and block ranges are not the audit log's (altered)")
    return problems
