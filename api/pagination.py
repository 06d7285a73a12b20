"""Cursor pagination for every list of the API (DESIGN.md's convention): ``{"items": [...], "next": url | null}``,
``limit`` 1–200 (default 50), newest first, and an opaque cursor over (created_at, id) — stable while rows are
added, since a page starts strictly after the last row the previous one showed. A list in another order has a
cursor over its own key (``encode_key_cursor``: providers by id, a request's quotes by rank). Every cursor names its
list: one of another list is refused (400 ``invalid-cursor``), never read as a position in this one."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Query, Request
from pydantic import BaseModel

from api.input_types import in_utc_range

DEFAULT_LIMIT, MAX_LIMIT = 50, 200

T = TypeVar("T")
R = TypeVar("R")

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"page size, 1–{MAX_LIMIT}")]
CursorParam = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=512,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="the opaque cursor of the previous page's `next` link (one this API did not issue: 400)",
    ),
]


class InvalidCursor(ValueError):
    """A cursor this API did not issue (or one mangled on the way): a 400, never a 500."""


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None


def encode_cursor(kind: str, created_at: datetime, row_id: str) -> str:
    """A cursor of the ``kind`` list (newest first) after the row (``created_at``, ``row_id``)."""
    raw = json.dumps([kind, created_at.isoformat(), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> tuple[datetime, str] | None:
    """(created_at, id) of the row a page of the ``kind`` list starts after; None for the first page."""
    if cursor is None:
        return None
    try:
        named, created_at, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment = in_utc_range(datetime.fromisoformat(created_at))
    except (ValueError, TypeError) as err:
        raise InvalidCursor(f"not a cursor of this API: {cursor[:80]!r}") from err
    if moment.tzinfo is None or not isinstance(row_id, str):
        raise InvalidCursor(f"not a cursor of this API: {cursor[:80]!r}")
    if named != kind:
        raise InvalidCursor(f"not a cursor of this list: {cursor[:80]!r}")
    return moment, row_id


def encode_key_cursor(kind: str, key: str) -> str:
    """A cursor over a list ordered by one string key (``kind`` names the list: a cursor of another is refused)."""
    raw = json.dumps([kind, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_key_cursor(kind: str, cursor: str | None) -> str | None:
    """The key a page of the ``kind`` list starts after; None for the first page."""
    if cursor is None:
        return None
    try:
        named, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as err:
        raise InvalidCursor(f"not a cursor of this API: {cursor[:80]!r}") from err
    if named != kind or not isinstance(key, str):
        raise InvalidCursor(f"not a cursor of this list: {cursor[:80]!r}")
    return key


def page(
    request: Request,
    kind: str,
    rows: Sequence[R],
    limit: int,
    key: Callable[[R], tuple[datetime, str]],
    render: Callable[[R], T],
) -> Page[T]:
    """A page of the ``kind`` list's ``rows`` fetched with ``limit + 1``: the extra row, if any, only says there is a
    next page."""
    return page_by(request, rows, limit, lambda row: encode_cursor(kind, *key(row)), render)


def page_by(
    request: Request, rows: Sequence[R], limit: int, cursor_of: Callable[[R], str], render: Callable[[R], T]
) -> Page[T]:
    """``page`` for a list with a cursor of its own (``cursor_of`` a row: the cursor of the page after it)."""
    shown = list(rows[:limit])
    next_url = None
    if len(rows) > limit and shown:
        next_url = str(request.url.include_query_params(cursor=cursor_of(shown[-1]), limit=limit))
    return Page[T](items=[render(row) for row in shown], next=next_url)


LOAN_EVENT_CURSOR = "loan-event"


def encode_sequence_cursor(sequence: int) -> str:
    """A cursor over a loan's events in their order: the sequence of the last event shown."""
    return encode_key_cursor(LOAN_EVENT_CURSOR, str(sequence))


def decode_sequence_cursor(cursor: str | None) -> int:
    """The sequence a page of a loan's events starts after; 0 for the first page."""
    key = decode_key_cursor(LOAN_EVENT_CURSOR, cursor)
    if key is None:
        return 0
    if not key.isascii() or not key.isdigit() or len(key) > 9:
        raise InvalidCursor(f"not a cursor of this list: {cursor!r:.80}")
    return int(key)


QUOTE_RANK_CURSOR = "quote-rank"


def encode_rank_cursor(rank: int, row_id: str) -> str:
    """A cursor over a request's quotes in rank order: the (rank, id) of the last quote shown."""
    return encode_key_cursor(QUOTE_RANK_CURSOR, f"{rank}:{row_id}")


def decode_rank_cursor(cursor: str | None) -> tuple[int, str] | None:
    """The (rank, id) a page of a request's quotes starts after; None for the first page."""
    key = decode_key_cursor(QUOTE_RANK_CURSOR, cursor)
    if key is None:
        return None
    rank, _, row_id = key.partition(":")
    if not rank.isascii() or not rank.isdigit() or len(rank) > 9 or not row_id:
        raise InvalidCursor(f"not a cursor of this list: {cursor!r:.80}")
    return int(rank), row_id
