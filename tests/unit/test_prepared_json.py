"""The recordset INSERT's JSON text (``store.prepared._json_text``, mostly msgspec's) is the text ``json.dumps`` wrote
before, byte for byte: on random documents of what the write's rows hold (strings with escapes, non-ASCII and DEL,
integers of any size, booleans, null, nesting) and on a real credit request's rows (the quoting service's)."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql

from aggregator.quote_store import InMemoryQuotingStore
from compliance import ComplianceService
from compliance.jurisdiction import load_rules
from compliance.sanctions.lists import AddressList, ListVersion, NameList
from compliance.sanctions.screening import SanctionsScreen
from store.compliance import audit_columns, decision_rows
from store.prepared import _as_json, _json_text
from store.quoting import _INSERT_AUDIT_ENTRIES, _INSERT_DECISIONS, _INSERT_OUTCOMES, _INSERT_QUOTES
from store.records import columns
from store.risk import risk_rows
from tests.support.quoting import SPEC, borrower_file, quoting_service

pytestmark = pytest.mark.unit

_CHARS = 'abcXYZ019 _-:,.[]{}"\\/\n\t\r\x00\x1f\x7f\u00e9\u2028\U0001f4b8'


def _before(values: Any) -> str | None:
    try:
        return json.dumps(values, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None


def _value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return "".join(rng.choice(_CHARS if rng.random() < 0.3 else _CHARS[:20]) for _ in range(rng.randrange(12)))
    if kind == 1:
        return rng.choice([0, -1, 2**63, -(2**64) - 5, 2**256 - 1, rng.randrange(-(10**30), 10**30)])
    if kind == 2:
        return rng.random() < 0.5
    if kind == 3:
        return None
    if kind == 4:
        return "0x" + rng.randbytes(32).hex()
    if kind == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{i}{rng.choice(_CHARS)}": _value(rng, depth + 1) for i in range(rng.randrange(5))}


def test_random_documents_are_written_as_json_dumps_wrote_them() -> None:
    rng = random.Random(1818)
    ascii_only = 0
    for _ in range(3000):
        values = [{"id": f"r{i}", "doc": _value(rng, 0), "n": rng.randrange(10**6)} for i in range(rng.randrange(1, 4))]
        text = _json_text(values)
        assert text == _before(values)
        ascii_only += text is not None and text.isascii() and "\\u" not in text
    assert ascii_only > 300  # the msgspec path was taken, not only the fallback


def test_a_credit_requests_rows_are_written_as_json_dumps_wrote_them() -> None:
    version = ListVersion("t", datetime(2026, 11, 1, tzinfo=UTC), "t.csv", "00" * 32)
    screen = SanctionsScreen(AddressList(version, MappingProxyType({})), NameList(version, ()))
    compliance = ComplianceService(screen, load_rules(), clock=lambda: datetime.now(UTC), inputs_key=bytes(range(32)))
    store = InMemoryQuotingStore()
    quoted = asyncio.run(quoting_service(store, compliance).request_credit(borrower_file(), SPEC))
    _, risk_audit = risk_rows(store.tables.risk_decisions[0])
    decisions, audits = decision_rows(store.tables.decision_records, quoted.request.id)
    dialect = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
    tables = [
        (_INSERT_OUTCOMES, [columns(o) | {"request_id": quoted.request.id} for o in quoted.outcomes]),
        (_INSERT_QUOTES, [columns(q) for q in quoted.quotes]),
        (_INSERT_DECISIONS, decisions),
        (_INSERT_AUDIT_ENTRIES, [audit_columns(*audit) for audit in (risk_audit, *audits)]),
    ]
    for insert, rows in tables:
        plan = insert._plan_for(dialect, tuple(rows[0]))
        assert plan is not None
        assert plan.recordset is not None
        converters = plan.recordset.converters
        values = [{name: row[name] if f is None else f(row[name]) for name, f in converters} for row in rows]
        text = _as_json(plan.recordset, rows)
        assert text is not None
        assert text == _before(values)
