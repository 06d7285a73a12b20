"""Reading rows when one of them holds a value its column's type cannot read back (``store.types.UnreadableValue``:
a uint256 column holding ``'1.5e9'``, written around the application). Such a value fails the whole result it is
in, so one bad loan row would stop every read that lists it; ``rows_each`` reads the others and names the bad ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVarTuple

from sqlalchemy import Row, Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from store.types import UnreadableValue


@dataclass(frozen=True, slots=True)
class UnreadableRow:
    """A row of the query that cannot be read: its key, and what is wrong with it."""

    key: str
    reason: str


Columns = TypeVarTuple("Columns")


def rows_each(
    session: Session, query: Select[*Columns], key: InstrumentedAttribute[str]
) -> list[Row[*Columns] | UnreadableRow]:
    """The rows of ``query``, in its order; when one of them cannot be read, each is read on its own (by ``key``,
    the primary key of the row that may be bad) and every one that cannot be read comes back as an ``UnreadableRow``.
    The first read is the only one while every row reads."""
    try:
        return list(session.execute(query).all())
    except UnreadableValue:
        pass
    found: list[Row[*Columns] | UnreadableRow] = []
    for value in session.scalars(query.with_only_columns(key)).all():
        try:
            found.append(session.execute(query.where(key == value)).one())
        except UnreadableValue as err:
            found.append(UnreadableRow(value, str(err)))
    return found
