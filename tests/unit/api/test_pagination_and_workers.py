"""Cursor pagination's pure parts (cursor round trip, refusals, the next link) and CREDITMESH_WORKERS parsing."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from starlette.requests import Request

from api.pagination import (
    InvalidCursor,
    decode_cursor,
    decode_key_cursor,
    decode_rank_cursor,
    decode_sequence_cursor,
    encode_cursor,
    encode_key_cursor,
    encode_rank_cursor,
    encode_sequence_cursor,
    page,
)
from api.workers import WORKERS, enabled_workers
from chain.errors import ConfigurationError

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _request(query: str = "") -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "path": "/v1/loans",
        "query_string": query.encode(),
        "headers": [(b"host", b"127.0.0.1:8000")],
    }
    return Request(scope)


def test_a_cursor_round_trips_and_is_opaque() -> None:
    cursor = encode_cursor("loans", NOW, "loan-1")
    assert "loan-1" not in cursor
    assert decode_cursor("loans", cursor) == (NOW, "loan-1")
    assert decode_cursor("loans", None) is None


def test_a_cursor_of_another_list_is_refused() -> None:
    """A /v1/decisions cursor was read as a position in /v1/loans and /v1/api-keys (both (date, id) cursors)."""
    with pytest.raises(InvalidCursor, match="not a cursor of this list"):
        decode_cursor("loans", encode_cursor("decisions", NOW, "dec-1"))
    with pytest.raises(InvalidCursor):
        decode_cursor("loans", encode_key_cursor("loans", "loan-1"))  # a key cursor, even named alike
    with pytest.raises(InvalidCursor):
        decode_key_cursor("providers", encode_cursor("providers", NOW, "p"))


# the last two: moments with no UTC time (before year 1, after year 9999 there), which every query compares in UTC
_NO_UTC = [
    base64.urlsafe_b64encode(json.dumps(["loans", moment, "x"]).encode()).decode()
    for moment in ("0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01")
]


@pytest.mark.parametrize(
    "bad", ["", "not-a-cursor", "W10", encode_cursor("loans", NOW, "x")[:-3], "eyJhIjoxfQ", *_NO_UTC]
)
def test_a_cursor_we_did_not_issue_is_refused(bad: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor("loans", bad)


def test_a_rank_cursor_round_trips_and_refuses_another_lists() -> None:
    cursor = encode_rank_cursor(12, "quote-1")
    assert decode_rank_cursor(cursor) == (12, "quote-1")
    assert decode_rank_cursor(None) is None
    for bad in (
        encode_cursor("quote-rank", NOW, "quote-1"),
        encode_key_cursor("quote-rank", "x:quote-1"),
        "not-a-cursor",
    ):
        with pytest.raises(InvalidCursor):
            decode_rank_cursor(bad)
    with pytest.raises(InvalidCursor):
        decode_rank_cursor(encode_key_cursor("quote-rank", "3"))  # no id


def test_a_loan_event_cursor_round_trips_and_refuses_another_lists() -> None:
    assert decode_sequence_cursor(encode_sequence_cursor(37)) == 37
    assert decode_sequence_cursor(None) == 0
    for bad in (encode_rank_cursor(1, "q"), encode_key_cursor("loan-event", "-1"), encode_key_cursor("loan-event", "")):
        with pytest.raises(InvalidCursor):
            decode_sequence_cursor(bad)


def test_a_page_links_to_the_next_only_when_there_is_more() -> None:
    rows = [(NOW - timedelta(seconds=i), f"id-{i}") for i in range(3)]
    full = page(_request("limit=2"), "loans", rows, 2, lambda row: row, lambda row: row[1])
    assert full.items == ["id-0", "id-1"]
    assert full.next is not None
    assert full.next.startswith("http://127.0.0.1:8000/v1/loans?")
    next_cursor = full.next.split("cursor=")[1].split("&")[0]
    assert decode_cursor("loans", next_cursor) == rows[1]
    last = page(_request(), "loans", rows[2:], 2, lambda row: row, lambda row: row[1])
    assert (last.items, last.next) == (["id-2"], None)


def test_workers_are_named_or_all_or_none() -> None:
    assert enabled_workers("") == set()
    assert enabled_workers("none") == set()
    assert enabled_workers("all") == set(WORKERS) >= {"indexer", "outbox", "audit", "keeper", "defaulter"}
    assert enabled_workers(" Indexer ") == {"indexer"}
    assert enabled_workers("indexer,outbox,keeper") == {"indexer", "outbox", "keeper"}
    with pytest.raises(ConfigurationError, match="liquidator"):
        enabled_workers("indexer,liquidator")


def test_each_role_sees_its_own_loans() -> None:
    from aggregator.loans import LoanRecord
    from api.auth import Principal, Role
    from api.routers.loans import _scope

    loan = LoanRecord("x", "ethereum-local", 31337, "0x", "active", "USDC", 1, "0x", NOW)
    mine = replace(loan, id="a", borrower_id="b-1", provider_id="sim-bank")
    theirs = replace(loan, id="b", borrower_id="b-2", provider_id="pool:ethereum-local:USDC")
    foreign = replace(loan, id="c")
    cases = {
        Principal(Role.BORROWER, "b-1"): {"a"},
        Principal(Role.PROVIDER, "sim-bank"): {"a"},
        Principal(Role.PROVIDER, "pool:ethereum-local:USDC"): {"b"},
        Principal(Role.ADMIN, None): {"a", "b", "c"},
        Principal(Role.AUDITOR, None): {"a", "b", "c"},
    }
    for principal, seen in cases.items():
        assert {loan.id for loan in (mine, theirs, foreign) if _scope(principal).allows(loan)} == seen, principal
