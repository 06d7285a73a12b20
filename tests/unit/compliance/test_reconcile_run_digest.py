"""A stored run's digest recomputed from what is stored (``compliance.reconcile_runs``), pure: a result whose
detail is longer than the stored column hashes as stored, so a run stored intact verifies; a reworded discrepancy,
a rewritten digest and a run the audit log has no entry for are each reported."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from compliance.reconcile import DETAIL_CHARS, Category, ChainResult, ChainScope, Item, result_digest
from compliance.reconcile_runs import ReconciliationRun, StoredDiscrepancy, run_tampering

pytestmark = pytest.mark.unit

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _stored() -> tuple[ReconciliationRun, list[StoredDiscrepancy], dict[str, object]]:
    result = ChainResult(ChainScope("ethereum-local", 31337, 1, 100, "0x" + "99" * 20, "0x" + "33" * 20))
    result.add(Item("ethereum-local", Category.STATUS_MISMATCH, "loan #1", "loan", "x" * (DETAIL_CHARS + 5)))
    result.matched(3)
    digest = result_digest([result])
    counts = dict(result.counts)
    run = ReconciliationRun("r1", "test", "done", NOW, NOW, digest, counts, [result.summary()])
    items = [
        StoredDiscrepancy(
            "r1:0000001",
            NOW,
            i.chain_name,
            i.category.value,
            i.subject,
            i.what,
            i.detail[:DETAIL_CHARS],
            None,
            None,
            None,
        )
        for i in result.items
    ]
    chains = [{"chain": "ethereum-local", "fromBlock": 1, "toBlock": 100}]
    return run, items, {"digest": digest, "counts": counts, "chains": chains}


def test_a_run_stored_intact_verifies_even_with_a_detail_cut_to_its_column() -> None:
    run, items, audited = _stored()
    assert run_tampering(run, items, [audited]) == []


def test_a_reworded_discrepancy_a_rewritten_digest_or_a_missing_entry_is_reported() -> None:
    run, items, audited = _stored()
    reworded = [replace(items[0], detail="status: recorded active, on-chain active")]
    assert run_tampering(run, reworded, [audited]) == [
        "its stored chain summaries and discrepancies do not hash to its digest (altered)"
    ]
    rewritten = replace(run, digest="0x" + "00" * 32)
    assert f"its digest {rewritten.digest} is not the audit log's {run.digest} (rewritten)" in run_tampering(
        rewritten, items, [audited]
    )
    assert run_tampering(run, items, []) == [
        "no audit log entry records it (the entry deleted, or the run written outside a run)"
    ]
    assert run_tampering(replace(run, counts={"matched": 4}), items, [audited]) == [
        "its counts per category are not the audit log's (altered)"
    ]


def test_a_run_the_log_records_must_be_stored_done() -> None:
    run, items, audited = _stored()
    assert run_tampering(None, [], [audited]) == [
        "the audit log records it finished, but no such run is stored (deleted)"
    ]
    assert run_tampering(replace(run, status="failed"), items, [audited]) == [
        "the audit log records it finished, but it is stored as failed (altered)"
    ]
    assert run_tampering(replace(run, status="failed", digest=None), [], []) == []  # failed on its own


def test_a_second_entry_is_reported_and_the_first_one_holds() -> None:
    run, items, audited = _stored()
    forged = replace(run, digest="0x" + "00" * 32)
    second = audited | {"digest": forged.digest}
    assert run_tampering(forged, items, [audited, second]) == [
        "the audit log records it 2 times (a later entry written outside a run); checked against the first",
        "its stored chain summaries and discrepancies do not hash to its digest (altered)",
        f"its digest {forged.digest} is not the audit log's {run.digest} (rewritten)",
    ]
