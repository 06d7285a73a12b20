"""Copies of a written quoted request under other ids, for the write tests that store several side by side
(``test_quote_write``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aggregator.quote_store import QuotedRequest
from compliance import DecisionRecord
from risk.repository import StoredDecision


def renamed(
    written: tuple[QuotedRequest, StoredDecision, list[DecisionRecord]], n: int, quotes: int, note: str
) -> tuple[QuotedRequest, StoredDecision, list[DecisionRecord]]:
    """The quoted request with new ids, its first ``quotes`` quotes, outcomes and records, ``note`` in its text."""
    quoted, decision, records = written
    request_id = other_id(quoted.request.id, n)
    request = replace(quoted.request, id=request_id, risk={**quoted.request.risk, "note": note})
    kept = [
        replace(
            q,
            id=other_id(q.id, n),
            request_id=request_id,
            offer_digest=other_id(q.offer_digest, n),
            disclosure={**q.disclosure, "n": note},
        )
        for q in quoted.quotes[:quotes]
    ]
    outcomes = [replace(o, detail=f"{o.detail} {note}") for o in quoted.outcomes[:quotes]]
    made = [replace(r, decision_id=other_id(r.decision_id, n)) for r in records[:quotes]]
    for record in made:
        record.record_hash()
    stored = replace(decision, id=other_id(decision.id, n), request_id=request_id)
    return QuotedRequest(request, outcomes, kept), stored, made


def other_id(identifier: str, n: int) -> str:
    """``identifier`` (a UUID or a hex digest) with its last two characters made ``n`` (two digits), or ``n + 50``
    where it ended with those already: a random id ends in "04" one time in 256, and renaming it 4 then gave the
    same id (a duplicate key in one CI run)."""
    candidate = f"{identifier[:-2]}{n:02d}"
    return candidate if candidate != identifier else f"{identifier[:-2]}{n + 50:02d}"


def variants(written: tuple[QuotedRequest, StoredDecision, list[DecisionRecord]]) -> list[tuple[Any, ...]]:
    """The quoted request as written, and two more: one row in every table (a JSON column's text is then psycopg's
    ``json.dumps``), and non-ASCII text, quotes and backslashes in the documents and the columns."""
    return [written, renamed(written, 1, 1, "plain"), renamed(written, 2, 3, 'ünï€ødé ✓ \\ "q"')]
