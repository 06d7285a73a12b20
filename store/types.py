"""Column types shared by the store's models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UnreadableValue(ValueError):
    """A value stored in a column that its type cannot read back (a uint256 column holding ``'1.5e9'``, written
    around the application): the row it is in cannot be read, the others can (``store.unreadable``)."""


class Uint256(TypeDecorator[int]):
    """A non-negative integer up to 2**256 - 1 (token base units), stored as its decimal string so that every
    database keeps it exactly (SQLite has no exact 256-bit numeric)."""

    impl = String(78)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not 0 <= value < 2**256:
            raise ValueError(f"not a uint256: {value}")
        return str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        text = str(value)
        if not (text.isascii() and text.isdigit()) or len(text) > 78:  # int() takes " 7", "-1", "1_0" too
            raise UnreadableValue(f"{text!r} is stored where a uint256 belongs (base units, decimal digits only)")
        return int(text)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite drops the zone; this puts it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
