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
once and the writer waits for their results once, at the block's end, not once per statement."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    names: tuple[str, ...]  # the row keys in the statement's parameter order
    converters: tuple[tuple[str, Callable[[Any], Any] | None], ...]  # each with its bind processor, if any
    positional: bool


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
        converters = plan.converters
        params: list[Any] = [
            tuple(row[name] if process is None else process(row[name]) for name, process in converters) for row in rows
        ]
        if not plan.positional:
            params = [dict(zip(plan.names, values, strict=True)) for values in params]
        connection.exec_driver_sql(plan.sql, params if len(params) > 1 else params[0])

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
        return _Plan(compiled.string, order, converters, bool(compiled.positional))


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
