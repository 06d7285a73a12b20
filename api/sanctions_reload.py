"""Every API process picks up a sanctions name list imported into the database (``creditmesh sanctions import``)
within a few seconds, without a restart and without holding up requests.

Each process polls the newest stored version's label and publication date (one indexed row, not the names) every
``CREDITMESH_SANCTIONS_RELOAD_SECONDS``. When a list newer than the one it screens with is stored (published on or
after it, as at start-up), it reads the names and builds the new index in a worker thread — requests keep being
screened with the old list meanwhile — then swaps the compliance service's screen in one assignment. A decision
screens with the one screen it read first, so its record names the version it used."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import SQLAlchemyError

from api.heap import freeze_long_lived
from compliance import ComplianceService
from compliance.errors import ComplianceError
from store.autocommit import autocommit_session
from store.db import Database
from store.sanctions_lists import SqlSanctionsListRepository

log = logging.getLogger(__name__)


def warm_name_index(compliance: ComplianceService) -> None:
    """Build the name index of the screen in use now (blocking, seconds of CPU for the SDN list: the app's lifespan runs
    it in a worker thread before the process listens), so that no credit request builds it inline or waits for it.
    A caller arriving meanwhile waits for this build instead of starting its own (``SanctionsScreen.name_index`` is
    built once)."""
    _ = compliance.screen.name_index


class NameListReloader:
    def __init__(self, database: Database, compliance: ComplianceService, interval_seconds: float) -> None:
        self._db, self._compliance, self._interval = database, compliance, interval_seconds

    def check(self) -> bool:
        """One poll (blocking: run it in a worker thread): load and swap in a newer stored list. True if swapped."""
        current = self._compliance.screen.names.version
        with autocommit_session(self._db) as session:  # no ROLLBACK (store.autocommit)
            head = SqlSanctionsListRepository(session).newest_version()
        if head is None or head[0] == current.label or head[1] < current.published:
            return False
        with self._db.unit_of_work() as uow:
            names = SqlSanctionsListRepository(uow.session).newest()
        if names is None or names.version.label == current.label:
            return False
        screen = self._compliance.screen.with_names(names)
        _ = screen.name_index  # built here, off the request path (about a second for the SDN list)
        self._compliance.screen = screen
        log.info("sanctions name list %s loaded (was %s)", names.version.label, current.label)
        return True

    async def run(self) -> None:
        """Poll until cancelled; a database that does not answer is retried at the next poll."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                swapped = await asyncio.to_thread(self.check)
            except (SQLAlchemyError, ComplianceError, ValueError) as err:
                log.warning("sanctions name list reload failed, retried in %s s: %s", self._interval, err)
            else:
                if swapped:  # the new list and its index live as long as the process: out of the collector's passes
                    freeze_long_lived(collect=False)
