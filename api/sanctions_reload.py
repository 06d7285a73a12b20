"""Every API process picks up the sanctions lists imported into the database (``creditmesh sanctions import``: the
names, and the EVM addresses of the same files) within a few seconds, without a restart and without holding up
requests.

Each process polls the newest stored versions' labels and publication dates (one indexed row a list, not the names)
every ``CREDITMESH_SANCTIONS_RELOAD_SECONDS``. When a list newer than the one it screens with is stored (published on
or after it, as at start-up), it reads it and builds the new name index in a worker thread — requests keep being
screened with the old lists meanwhile — then swaps the compliance service's screen in one assignment. A decision
screens with the one screen it read first, so its record names the versions it used."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from api.heap import freeze_long_lived
from compliance import ComplianceService
from compliance.errors import ComplianceError
from compliance.sanctions.lists import ListVersion
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


class SanctionsListReloader:
    def __init__(self, database: Database, compliance: ComplianceService, interval_seconds: float) -> None:
        self._db, self._compliance, self._interval = database, compliance, interval_seconds

    def check(self) -> bool:
        """One poll (blocking: run it in a worker thread): load and swap in newer stored lists. True if swapped."""
        screen = self._compliance.screen
        with autocommit_session(self._db) as session:  # no ROLLBACK (store.autocommit)
            lists = SqlSanctionsListRepository(session)
            names_head, addresses_head = lists.newest_version(), lists.newest_addresses_version()
        new_names = _newer(names_head, screen.names.version)
        new_addresses = _newer(addresses_head, screen.addresses.version)
        if not (new_names or new_addresses):
            return False
        with self._db.unit_of_work() as uow:
            lists = SqlSanctionsListRepository(uow.session)
            names = lists.newest() if new_names else None
            addresses = lists.newest_addresses() if new_addresses else None
        swapped = screen
        if names is not None and names.version.label != screen.names.version.label:
            swapped = swapped.with_names(names)
            log.info("sanctions name list %s loaded (was %s)", names.version.label, screen.names.version.label)
        if addresses is not None and addresses.version.label != screen.addresses.version.label:
            swapped = swapped.with_addresses(addresses)
            log.info(
                "sanctions address list %s loaded (was %s)", addresses.version.label, screen.addresses.version.label
            )
        if swapped is screen:
            return False
        _ = swapped.name_index  # built here, off the request path (about a second for the SDN list)
        self._compliance.screen = swapped
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


def _newer(head: tuple[str, datetime] | None, current: ListVersion) -> bool:
    """Whether the stored list ``head`` (label, publication date) is another list published on or after ``current``."""
    return head is not None and head[0] != current.label and head[1] >= current.published
