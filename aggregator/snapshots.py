"""Transactions for the in-memory fakes of the aggregator's stores: a unit of work over plain tables that keeps a
deep copy as of its last commit, so ``rollback`` (also on leaving the ``with`` block) undoes the uncommitted rest."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar


class SnapshotUnitOfWork:
    def __init__(self, tables: Any) -> None:
        self._tables = tables
        self._snapshot = copy.deepcopy(tables)

    def commit(self) -> None:
        self._snapshot = copy.deepcopy(self._tables)

    def rollback(self) -> None:
        self._tables.__dict__.update(copy.deepcopy(self._snapshot).__dict__)


UnitOfWork = TypeVar("UnitOfWork", bound=SnapshotUnitOfWork)


@contextmanager
def rolled_back_on_exit(uow: UnitOfWork) -> Iterator[UnitOfWork]:
    """``uow`` for a ``with`` block; what was not committed by its end is undone."""
    try:
        yield uow
    finally:
        uow.rollback()
