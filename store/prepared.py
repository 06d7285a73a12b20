"""INSERTs of plain rows compiled once per dialect and column set, for writers that insert many rows on every call
and read none back (the credit request's write: its request, outcomes, quotes, risk decision, decision records and
audit entries, every credit request).

``Connection.execute(insert(table), rows)`` looks its compiled statement up, builds an execution context and runs
every row through the compiler's parameter construction before the driver sees it: on the quote path that was most
of the write's CPU, far more than SQLite's own work. Here the statement is compiled once per dialect and column set
(``Insert.compile(dialect=…, column_keys=…)``: the same SQL, casts and paramstyle SQLAlchemy would send), each value
goes through its column type's own bind processor for that dialect (``TypeEngine.dialect_impl(dialect)
.bind_processor(dialect)``: JSON serialized, UTC timestamps, uint256 strings, psycopg's JSON wrapper …), and the rows
go to the driver in one ``Connection.exec_driver_sql`` (executemany for several), on the unit of work's connection
and transaction, its events fired as for any statement.

Rows whose column set differs from the first row's, and tables with Python-side column defaults a row leaves out
(SQLAlchemy would compute them per row), go through ``Connection.execute`` as before.

:func:`one_round_trip` sends such INSERTs to PostgreSQL in one psycopg pipeline: the server gets every statement at
once and the writer waits for their results once, at the block's end, not once per statement.

**Several rows on PostgreSQL** go as ONE statement with one parameter, the rows as a JSON array:
``INSERT INTO t (columns) SELECT columns FROM json_populate_recordset(NULL::t, %s::json) WITH ORDINALITY … ORDER BY
ordinality`` (PostgreSQL's own row constructor from JSON: each value is read by its column's input function, in
the rows' order). psycopg's executemany binds, sends and reads the result of every row on its own; on the credit
request's write (~50 rows over six tables) that per-row work was most of the write's CPU. Only tables whose given
columns all have a JSON form that PostgreSQL reads back as the same value take this path: text, integers and
booleans as they are, JSON documents as themselves, timestamps in ISO 8601 with their offset, bytes as ``\\x`` hex;
a JSON column given None (SQLAlchemy writes the JSON ``null``, the array would write SQL NULL) and any other type
take executemany.

**Several tables at once** (:func:`as_one_statement`, PostgreSQL): the recordset INSERTs of several tables as ONE
statement, each but the last a data-modifying ``WITH`` query: atomic, and in autocommit its own transaction (the
credit request's write: one round trip, no ``BEGIN``/``COMMIT``, one statement's execution instead of six)."""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, cast

import msgspec
import psycopg
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    DateTime,
    Enum,
    Float,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
    insert,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import NullType, TypeDecorator, TypeEngine


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    names: tuple[str, ...]  # the row keys in the statement's parameter order
    converters: tuple[tuple[str, Callable[[Any], Any] | None], ...]  # each with its bind processor, if any
    positional: bool
    #: PostgreSQL: the JSON-array INSERT of several rows and each column's value as JSON (None: executemany only)
    recordset: _Recordset | None = None


@dataclass(frozen=True, slots=True)
class _Recordset:
    sql: str
    converters: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    json_columns: tuple[str, ...]  # a None given for one of these takes executemany


class PreparedInsert:
    """``INSERT INTO table`` of rows given as column-keyed mappings (see the module's notes)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._statement = insert(table)
        # columns SQLAlchemy fills in Python when a row leaves them out: such rows take the general path
        self._python_defaults = frozenset(column.key for column in table.columns if column.default is not None)
        # per dialect (weakly: an engine's dialect goes with it) and column set
        self._plans: weakref.WeakKeyDictionary[Dialect, dict[tuple[str, ...], _Plan | None]] = (
            weakref.WeakKeyDictionary()
        )

    def prepared(self, dialect: Dialect, keys: Sequence[str]) -> bool:
        """Whether rows with these column keys are inserted through a statement compiled once (else through
        ``Connection.execute``)."""
        return self._plan_for(dialect, tuple(keys)) is not None

    def _plan_for(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
        plans = self._plans.get(dialect)
        if plans is None:
            plans = self._plans.setdefault(dialect, {})
        plan = plans.get(keys, _UNPLANNED)
        if plan is _UNPLANNED:
            plan = plans[keys] = self._plan(dialect, keys)
        return plan  # type: ignore[no-any-return]

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (at least one) on ``connection``."""
        keys = tuple(rows[0])
        plan = self._plan_for(connection.dialect, keys)
        if plan is None or any(len(row) != len(keys) or row.keys() != rows[0].keys() for row in rows[1:]):
            connection.execute(self._statement, list(rows) if len(rows) > 1 else rows[0])
            return
        if plan.recordset is not None and len(rows) > 1:
            document = _as_json(plan.recordset, rows)
            if document is not None:
                connection.exec_driver_sql(plan.recordset.sql, (document,))
                return
        converters = plan.converters
        params: list[Any] = [
            tuple(row[name] if process is None else process(row[name]) for name, process in converters) for row in rows
        ]
        if not plan.positional:
            params = [dict(zip(plan.names, values, strict=True)) for values in params]
        connection.exec_driver_sql(plan.sql, params if len(params) > 1 else params[0])

    def recordset_document(self, dialect: Dialect, rows: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
        """PostgreSQL: the recordset INSERT of ``rows`` (at least one) and its one parameter, the rows as a JSON
        array that stores what ``execute`` stores (see :func:`as_one_statement`); None when they cannot go so."""
        keys = tuple(rows[0])
        plan = self._plan_for(dialect, keys)
        if plan is None or plan.recordset is None:
            return None
        if any(len(row) != len(keys) or row.keys() != rows[0].keys() for row in rows[1:]):
            return None
        document = _as_json(plan.recordset, rows) if len(rows) > 1 else _row_as_json(plan.recordset, rows[0])
        return None if document is None else (plan.recordset.sql, document)

    def _plan(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
        if self._python_defaults - set(keys) or not set(keys) <= set(self.table.columns.keys()):
            return None
        compiled = self._statement.compile(dialect=dialect, column_keys=list(keys))
        if getattr(compiled, "escaped_bind_names", None):
            return None  # bind names the SQL spells differently from the columns
        order = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds)
        binds = [compiled.binds[name] for name in order]
        if sorted(order) != sorted(keys) or any(bind.key != name for bind, name in zip(binds, order, strict=True)):
            return None  # not one plain bound parameter per given column: let SQLAlchemy execute it
        converters = tuple(
            (name, bind.type.dialect_impl(dialect).bind_processor(dialect))
            for name, bind in zip(order, binds, strict=True)
        )
        recordset = _recordset(self.table, dialect, order) if dialect.name == "postgresql" else None
        return _Plan(compiled.string, order, converters, bool(compiled.positional), recordset)


def _as_json(recordset: _Recordset, rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The rows as the JSON array of the recordset INSERT; None when a value has no JSON form here (executemany)."""
    if any(row[name] is None for row in rows for name in recordset.json_columns):
        return None
    try:
        values = [
            {name: row[name] if to_json is None else to_json(row[name]) for name, to_json in recordset.converters}
            for row in rows
        ]
    except (TypeError, ValueError):
        return None
    return _json_text(values)


def _row_as_json(recordset: _Recordset, row: Mapping[str, Any]) -> str | None:
    """One row as the recordset INSERT's JSON array, storing what ``execute`` stores for one row (executemany): there
    a JSON column's value goes through psycopg's JSON dumper, whose ``json.dumps(value)`` (default separators, ASCII
    escapes) is the column's text; here the same text is put in the array as it is (PostgreSQL's ``json`` keeps a
    value's text). The other columns' values as in ``_as_json`` (their text is not kept: any valid JSON of the same
    value stores the same). None where ``_as_json`` would give None."""
    try:
        values = {
            name: msgspec.Raw(_dumps_as_psycopg(row[name]))
            if name in recordset.json_columns
            else (row[name] if to_json is None else to_json(row[name]))
            for name, to_json in recordset.converters
        }
        return _encode([values]).decode()
    except (TypeError, ValueError, OverflowError):
        return None


def _dumps_as_psycopg(value: Any) -> bytes:
    if value is None:
        raise ValueError("a JSON column given None takes executemany (SQLAlchemy writes the JSON null there)")
    return json.dumps(value).encode()


def as_one_statement(
    dialect: Dialect, inserts: Sequence[tuple[PreparedInsert, Sequence[Mapping[str, Any]]]]
) -> tuple[str, tuple[str, ...]] | None:
    """PostgreSQL: the INSERTs of several tables' rows (each ``(insert, rows)``, at least one row; in order) as ONE
    statement and its parameters: each table's recordset INSERT a data-modifying ``WITH`` query of the last one's.
    A single statement is atomic (all its rows or none) and, in autocommit, its own transaction: a writer of many
    tables sends one statement, not ``BEGIN``, an INSERT per table and ``COMMIT``. Every sub-statement runs on one
    snapshot and none reads another's rows; foreign keys are checked at the statement's end, when all its rows
    are there, so a table's rows may refer to an earlier one's. Each table's rows keep their order (identity
    columns and sequences are drawn in it) and store what ``PreparedInsert.execute`` stores (one row: see
    ``_row_as_json``). None when any table's rows cannot go so (another dialect, a column type without a known JSON
    form, a JSON column given None, different column sets): write them with ``execute``."""
    if dialect.name != "postgresql" or not inserts:
        return None
    statements, documents = [], []
    for insert_, rows in inserts:
        prepared = insert_.recordset_document(dialect, rows)
        if prepared is None:
            return None
        statements.append(prepared[0])
        documents.append(prepared[1])
    if len(statements) == 1:
        return statements[0], tuple(documents)
    queries = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(statements[:-1]))
    return f"WITH {queries} {statements[-1]}", tuple(documents)


_encode = msgspec.json.Encoder().encode


def _json_text(values: list[dict[str, Any]]) -> str | None:
    """``json.dumps(values, separators=(",", ":"), allow_nan=False)``, mostly written by msgspec (~7x faster on the
    credit request's ~30 KB of rows; tests/unit/store/test_prepared_json.py compares the two). For strings, integers
    (any size), booleans, null, objects and arrays both write the same compact JSON but for characters outside
    printable ASCII, which json.dumps escapes (``\\u00e9``) and msgspec writes as they are: such a text is written
    again by json.dumps. Where they differ otherwise the rows' documents never go: floats (money is never one;
    msgspec writes ``1e16`` for ``1e+16``, and NaN as null where json.dumps refuses it) and values JSON has no type
    for (msgspec writes datetimes, UUIDs, decimals and bytes as strings; json.dumps refuses them). None when json.dumps
    refuses a value (the rows then take executemany)."""
    try:
        encoded = _encode(values)
    except (TypeError, ValueError, OverflowError):
        encoded = b"\x7f"  # json.dumps decides
    if encoded.isascii() and b"\x7f" not in encoded:
        return encoded.decode()
    try:
        return json.dumps(values, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None


def _recordset(table: Table, dialect: Dialect, names: tuple[str, ...]) -> _Recordset | None:
    """The JSON-array INSERT of ``names`` into ``table`` (see the module's notes); None when a column has a type
    whose JSON form is not known here to read back as the same value."""
    converters = []
    for name in names:
        known, to_json = _to_json(table.columns[name].type, dialect)
        if not known:
            return None
        converters.append((name, to_json))
    quote = dialect.identifier_preparer.quote
    table_name = dialect.identifier_preparer.format_table(table)
    listed = ", ".join(quote(name) for name in names)
    # identifiers only, quoted by the dialect; the rows are the one bound parameter
    sql = (
        f"INSERT INTO {table_name} ({listed}) SELECT {listed} "  # noqa: S608
        f"FROM json_populate_recordset(NULL::{table_name}, %s::json) WITH ORDINALITY AS r ORDER BY r.ordinality"
    )
    json_columns = tuple(name for name in names if isinstance(_base(table.columns[name].type), JSON))
    return _Recordset(sql, tuple(converters), json_columns)


def _base(kind: TypeEngine[Any]) -> TypeEngine[Any]:
    return kind.impl_instance if isinstance(kind, TypeDecorator) else kind


def _to_json(kind: TypeEngine[Any], dialect: Dialect) -> tuple[bool, Callable[[Any], Any] | None]:
    """Whether a value of a column of type ``kind`` has a JSON form PostgreSQL reads back as the same value, and the
    function that makes it (None: the value as it is)."""
    base = _base(kind)
    if isinstance(kind, TypeDecorator):
        if isinstance(base, DateTime) and base.timezone:
            return True, partial(_timestamp, partial(kind.process_bind_param, dialect=dialect))
        return False, None
    if isinstance(kind, Enum | Numeric | Float):
        return False, None  # an enum is written by name; numbers with a fraction are not JSON's
    if isinstance(kind, JSON | String | Integer | Boolean):
        return True, None  # a JSON document as itself: SQLAlchemy's JSON serializes it with json.dumps too
    if isinstance(kind, DateTime) and kind.timezone:
        return True, partial(_timestamp, None)
    if isinstance(kind, LargeBinary):
        return True, _bytes_as_hex
    if isinstance(kind, NullType):  # a foreign key's column typed by its target: JSON scalars only
        return True, _scalar
    return False, None


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, str | int | bool):
        return value
    raise TypeError(f"no JSON form known for a {type(value).__name__} of an untyped column")


def _timestamp(bind: Callable[[Any], Any] | None, value: datetime | None) -> str | None:
    if bind is not None:
        value = bind(value)
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("a naive datetime for a timestamp with time zone")
    return value.isoformat()


def _bytes_as_hex(value: bytes | None) -> str | None:
    return None if value is None else "\\x" + bytes(value).hex()


_UNPLANNED: Any = object()


@contextmanager
def one_round_trip(connection: Connection) -> Iterator[None]:
    """The statements run in the block on ``connection`` sent in ONE round trip where the driver can (psycopg's
    pipeline mode, PostgreSQL): each ``execute`` queues its statement and the results are read at the block's end.
    Statements whose results are read back must not run in it (nothing is read until the end). An error the server
    reports at the end is raised as SQLAlchemy raises a statement's (``DBAPIError.instance``: ``IntegrityError``,
    ``OperationalError`` …; a lost connection invalidated), the transaction then aborted as after any failed
    statement. Elsewhere (SQLite) the statements run one by one as before."""
    pooled = connection.connection
    driver = pooled.driver_connection
    if not isinstance(driver, psycopg.Connection):
        yield
        return
    try:
        with driver.pipeline():
            yield
    except psycopg.Error as err:
        lost = connection.dialect.is_disconnect(cast(Any, err), pooled, None)
        if lost:  # as SQLAlchemy does for a statement's error: the connection is not handed out again
            connection.invalidate(err)
        raise DBAPIError.instance(
            None, None, err, psycopg.Error, connection_invalidated=lost, dialect=connection.dialect
        ) from err
