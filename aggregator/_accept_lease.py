"""The accept records' keeping for ``aggregator.accepting``: each step persisted before the next starts, every write
fenced by the record's owner (a process whose lease ran out writes nothing), and the lease renewed while this
process drives the accept."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from aggregator.accept_saga import AcceptRecord, AcceptStep, AcceptStore, AcceptUnitOfWork, advance


class LeaseLost(Exception):
    """Another process took this accept over (our lease ran out): stop driving it."""


class AcceptRecords:
    def __init__(self, store: AcceptStore, owner: str, lease: timedelta, clock: Callable[[], datetime]) -> None:
        self._store, self.owner, self._lease, self._clock = store, owner, lease, clock

    def current(self, quote_id: str) -> AcceptRecord | None:
        with self._store.unit_of_work() as uow:
            return uow.accepts.record(quote_id)

    @staticmethod
    def fence(uow: AcceptUnitOfWork, record: AcceptRecord) -> None:
        """LeaseLost unless ``record``'s owner still holds the accept (checked inside the writing transaction)."""
        current = uow.accepts.record(record.quote_id)
        if current is None or current.owner != record.owner:
            raise LeaseLost(record.quote_id)

    def lease_until(self) -> datetime:
        return self._clock() + self._lease

    async def step(self, record: AcceptRecord, step: AcceptStep, **changes: Any) -> AcceptRecord:
        """Persist the next step (fenced by the owner: a process that lost the lease writes nothing)."""
        now = self._clock()
        updated = advance(record, step, now, lease_until=now + self._lease, **changes)

        def work() -> None:
            with self._store.unit_of_work() as uow:
                self.fence(uow, record)
                uow.accepts.save(updated)
                uow.commit()

        await asyncio.to_thread(work)
        return updated

    @contextlib.asynccontextmanager
    async def renewing(self, record: AcceptRecord) -> AsyncIterator[None]:
        """Renew the lease while this process drives the accept."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self._lease.total_seconds() / 3)
                await asyncio.to_thread(self._renew, record.quote_id)

        task = asyncio.create_task(renew())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _renew(self, quote_id: str) -> None:
        with self._store.unit_of_work() as uow:
            current = uow.accepts.record(quote_id)
            if current is None or current.owner != self.owner:
                return
            uow.accepts.save(replace(current, lease_until=self.lease_until()))
            uow.commit()
