"""Plain records to ORM rows and back by their same-named fields (a record's fields are columns of its row): the one
mapping the repositories share, so no ORM object leaves ``store`` and no mapper spells out every column again."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

_R = TypeVar("_R")


_NAMES: dict[type, tuple[str, ...]] = {}


def _names(kind: type) -> tuple[str, ...]:
    """The record type's field names, looked up once per type (``dataclasses.fields`` builds a tuple each call)."""
    names = _NAMES.get(kind)
    if names is None:
        names = _NAMES[kind] = tuple(field.name for field in fields(kind))
    return names


def columns(record: object) -> dict[str, Any]:
    """A dataclass record's fields as column values (not ``dataclasses.asdict``, which deep-copies every JSON
    document)."""
    return {name: getattr(record, name) for name in _names(type(record))}


def from_row(kind: type[_R], row: object) -> _R:
    """The ``kind`` record of an ORM row: its same-named columns."""
    return kind(**{name: getattr(row, name) for name in _names(kind)})
