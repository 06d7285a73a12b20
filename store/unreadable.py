"""Stored values the models cannot read: a number that is not one (``'1.5e9'`` in a uint256 column), a JSON column
that holds no JSON or JSON of another shape than its readers take (``'{"0": 1}'`` for a proposal's list of calls: a
column declares its shape with ``info={SHAPE: ...}``), a timestamp that is none (``'yesterday'``). SQLite keeps
whatever text it is given (PostgreSQL's JSON any JSON), so a row altered by hand reads back as an exception out of
the ORM (``store.types.UnreadableValue`` for a base-units column), which fails the whole result it is in, or as a
value its reader fails on. Two ways past it, reads only:

- the auditor's tools screen the rows they read first (``unreadable_values``) and report each unreadable one by
  table, id and column, or refuse naming it (``read_naming_unreadable``, ``shape_checked``), instead of failing on
  it;
- servicing and the loan lists read the rows that can be read and name the others (``rows_each``), so one bad loan
  row does not stop every read that lists it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import ColumnElement, Integer, Row, Select, String, Table, select, type_coerce
from sqlalchemy.orm import InstrumentedAttribute, Session

from store import types
from store.base import Base

SHOWN_CHARS = 40  # of the unreadable value, in a report
T = TypeVar("T")
#: a column's ``info`` key for the shape its parsed value must have: a function of the value that says what is
#: wrong with it (None: nothing)
SHAPE = "shape"
Shape = Callable[[Any], "str | None"]


class UnreadableRow(ValueError):
    """A row a command must read holds a value its column cannot (``UnreadableValue``): the command refuses, naming
    it, rather than failing with the driver's or the parser's traceback."""

    def __init__(self, found: UnreadableValue) -> None:
        super().__init__(f"{found} (altered outside the platform?)")
        self.found = found


@dataclass(frozen=True, slots=True)
class UnreadableValue:
    table: str
    row_id: str
    column: str
    value: str  # as stored, cut to ``SHOWN_CHARS``
    why: str

    def __str__(self) -> str:
        return f"{self.table} {self.row_id}: {self.column} holds {self.value!r}, which cannot be read ({self.why})"


def unreadable_values(session: Session, model: type[Base], *where: ColumnElement[bool]) -> list[UnreadableValue]:
    """Every value of ``model``'s rows (those ``where`` selects) that its column type cannot read, in id order."""
    table = model.__table__
    assert isinstance(table, Table)
    (key,) = table.primary_key.columns
    dialect = session.get_bind().dialect
    checked: list[tuple[str, Callable[[Any], Any] | None, bool, Shape | None]] = []  # how its type reads it, ...
    raw: list[Any] = []
    for column in table.columns:
        processor: Callable[[Any], Any] | None = column.type.dialect_impl(dialect).result_processor(dialect, None)
        numeric = isinstance(column.type, Integer)
        if processor is None and not numeric:
            continue
        checked.append((column.name, processor, numeric, column.info.get(SHAPE)))
        raw.append(type_coerce(column, String()) if processor is not None else column)
    if not checked:
        return []
    found: list[UnreadableValue] = []
    for row in session.execute(select(key, *raw).where(*where).order_by(key)):
        row_id, values = str(row[0]), row[1:]
        for (name, processor, numeric, shape), value in zip(checked, values, strict=True):
            if value is None:
                continue
            why = _unreadable(value, processor, numeric, shape)
            if why is not None:
                found.append(UnreadableValue(table.name, row_id, name, str(value)[:SHOWN_CHARS], why))
    return found


def _unreadable(value: Any, processor: Callable[[Any], Any] | None, numeric: bool, shape: Shape | None) -> str | None:
    if numeric and processor is None:
        return None if isinstance(value, int) and not isinstance(value, bool) else "not an integer"
    assert processor is not None
    try:
        parsed = processor(value)
    except (ValueError, TypeError, OverflowError) as err:  # json.JSONDecodeError is a ValueError
        return f"{type(err).__name__}: {str(err)[:80]}"
    return None if shape is None or parsed is None else shape(parsed)


def shape_checked(row: T) -> T:
    """``row`` (a model's instance, read), or ``UnreadableRow`` naming its first value of a column that declares a
    shape (``SHAPE``) and holds JSON of another: its readers would fail on it with a ``TypeError`` or a
    ``KeyError`` far from the read."""
    table = row.__table__  # type: ignore[attr-defined]
    (key,) = table.primary_key.columns
    for column in table.columns:
        shape: Shape | None = column.info.get(SHAPE)
        value = getattr(row, column.key)
        why = None if shape is None or value is None else shape(value)
        if why is not None:
            shown = json.dumps(value)[:SHOWN_CHARS]
            raise UnreadableRow(UnreadableValue(table.name, str(getattr(row, key.key)), column.name, shown, why))
    return row


def mapping_of_text(value: Any) -> str | None:
    """The shape of a JSON object of text by text (a proposal's transactions by action)."""
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return None
    return "not an object of text values"


def mapping(value: Any) -> str | None:
    """The shape of a JSON object (a quote's signed offer)."""
    return None if isinstance(value, dict) else "not an object"


def read_naming_unreadable(session: Session, model: type[Base], read: Callable[[], T]) -> T:
    """``read()`` (a read of ``model``'s rows); when one of them cannot be read, ``UnreadableRow`` naming the first
    such value of ``model``'s table instead of the parser's error."""
    try:
        return read()
    except (ValueError, TypeError) as err:
        found = unreadable_values(session, model)
        if not found:
            raise
        raise UnreadableRow(found[0]) from err


@dataclass(frozen=True, slots=True)
class RowNotRead:
    """A row of the query that cannot be read: its key, and what is wrong with it."""

    key: str
    reason: str


Columns = TypeVarTuple("Columns")


def rows_each(
    session: Session, query: Select[*Columns], key: InstrumentedAttribute[str]
) -> list[Row[*Columns] | RowNotRead]:
    """The rows of ``query``, in its order; when one of them cannot be read, each is read on its own (by ``key``,
    the primary key of the row that may be bad) and every one that cannot be read comes back as a ``RowNotRead``.
    The first read is the only one while every row reads."""
    try:
        return list(session.execute(query).all())
    except types.UnreadableValue:
        pass
    found: list[Row[*Columns] | RowNotRead] = []
    for value in session.scalars(query.with_only_columns(key)).all():
        try:
            found.append(session.execute(query.where(key == value)).one())
        except types.UnreadableValue as err:
            found.append(RowNotRead(value, str(err)))
    return found
