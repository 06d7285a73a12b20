"""The audit log's chain, pure: sealing numbers and chains entries; ``verify`` names the first altered, inserted,
deleted or reordered entry, and an anchor catches a log rewritten with recomputed hashes."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from compliance.audit import GENESIS_HASH, Anchor, AuditEntry, AuditKind, InMemoryAuditLog, seal, verify

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def _log(count: int) -> list[AuditEntry]:
    log = InMemoryAuditLog()
    for n in range(count):
        log.append(AuditKind.COMPLIANCE_DECISION, f"b-{n}", {"recordHash": f"0x{n:064x}", "n": n}, NOW)
    log.seal()
    return log.entries()


def _rechain(entries: list[AuditEntry]) -> list[AuditEntry]:
    """What an attacker with the database does: renumber and recompute every hash."""
    from compliance.audit import PendingEntry

    pending = [PendingEntry(i, e.kind, e.subject, e.data, e.recorded_at) for i, e in enumerate(entries)]
    return [entry for _, entry in seal(None, pending)]


def test_sealed_log_verifies_and_chains() -> None:
    entries = _log(5)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(entries))
    report = verify(entries)
    assert report.ok
    assert report.head == entries[-1].entry_hash
    assert report.entries == 5


def test_sealing_continues_from_the_head() -> None:
    log = InMemoryAuditLog()
    log.append(AuditKind.KEY_ISSUED, "a", {"role": "auditor"}, NOW)
    log.seal()
    log.append(AuditKind.PII_ERASURE, "b", {}, NOW + timedelta(seconds=1))
    assert log.seal() == 1
    assert verify(log.entries()).ok


def test_altered_entry_is_named() -> None:
    entries = _log(6)
    entries[3] = replace(entries[3], data={**entries[3].data, "n": 99})
    report = verify(entries)
    assert not report.ok
    assert report.first_bad is not None
    assert report.first_bad.seq == 4
    assert "altered" in report.first_bad.reason


def test_deleted_entry_is_named() -> None:
    entries = _log(6)
    del entries[2]
    report = verify(entries)
    assert report.first_bad is not None
    assert report.first_bad.seq == 3
    assert "missing" in report.first_bad.reason


def test_inserted_entry_is_named() -> None:
    entries = _log(6)
    forged = AuditEntry(4, "accept", "x", {}, NOW, entries[2].entry_hash, "0x" + "11" * 32)
    shifted = [replace(e, seq=e.seq + 1) if e.seq >= 4 else e for e in entries]
    report = verify([*shifted, forged])
    assert report.first_bad is not None
    assert report.first_bad.seq == 4


def test_reordered_entries_are_named() -> None:
    entries = _log(6)
    entries[1], entries[2] = replace(entries[2], seq=2), replace(entries[1], seq=3)
    report = verify(entries)
    assert report.first_bad is not None
    assert report.first_bad.seq == 2


def test_anchor_catches_a_rewritten_log_with_recomputed_hashes() -> None:
    entries = _log(6)
    anchor = Anchor("ethereum-local", 5, entries[4].entry_hash, "0xabc", 10)
    assert verify(entries, [anchor]).ok
    tampered = list(entries)
    tampered[1] = replace(tampered[1], data={"n": 1, "recordHash": "0x" + "ff" * 32})
    rewritten = _rechain(tampered)
    assert verify(rewritten).ok  # the chain alone cannot tell
    report = verify(rewritten, [anchor])
    assert report.first_bad is not None
    assert report.first_bad.seq == 5
    assert "rewritten" in report.first_bad.reason


def test_anchor_past_the_end_means_entries_were_deleted() -> None:
    entries = _log(3)
    anchor = Anchor("polygon-local", 3, entries[2].entry_hash, "0xdef", 7)
    report = verify(entries[:2], [anchor])
    assert report.first_bad is not None
    assert report.first_bad.seq == 3
    assert "deleted" in report.first_bad.reason


def test_a_rewrite_is_placed_between_the_last_anchor_that_holds_and_the_first_that_fails() -> None:
    """Entry 4 altered and every later hash recomputed: the anchor at 6 fails and is named (the log walks), though
    the altered entry is 4; the anchor at 2 still holds, so the change is in entries 3..6 — said, not left implied."""
    entries = _log(7)
    anchors = [
        Anchor("ethereum-local", 2, entries[1].entry_hash, "0xa", 10),
        Anchor("ethereum-local", 6, entries[5].entry_hash, "0xb", 20),
    ]
    tampered = list(entries)
    tampered[3] = replace(tampered[3], data={"n": 3, "recordHash": "0x" + "ff" * 32})
    report = verify(_rechain(tampered), anchors)
    assert report.first_bad is not None
    assert str(report.first_bad) == (
        f"entry 6: anchored on ethereum-local in tx 0xb as {entries[5].entry_hash}; the log's entry differs "
        "(rewritten: one of entries 3 to 6 was changed; entry 2 is as anchored)"
    )
