"""Hot reload of an imported sanctions name list: two platform processes' compliance services (each with its own
reloader polling the same database) screen with a list imported by ``creditmesh sanctions import`` within seconds,
without a restart; a list published before the one in use is not loaded."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from api.bootstrap import _compliance
from api.cli import main
from api.sanctions_reload import NameListReloader
from api.settings import Settings
from compliance import BorrowerFacts, ComplianceService
from compliance.decisions import Outcome
from store.db import Database
from tests.integration.compliance.test_sanctions_import import _files

pytestmark = pytest.mark.integration

LISTED_ALIAS = BorrowerFacts("b-1", "0x" + "12" * 20, "Dmitriy Ivanovich Kovalenko", "US-FL")  # ALT.CSV, in full


async def _until(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the imported list was not picked up in time"
        await asyncio.sleep(0.05)


async def test_every_process_screens_with_a_newly_imported_list_within_seconds(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'creditmesh.db'}"
    database = Database(url)
    database.migrate()
    try:
        processes: list[ComplianceService] = [_compliance(Settings(data_dir=tmp_path), database) for _ in range(2)]
        shipped = processes[0].screen.name_list_version  # (its index is never built: no name is screened with it)
        reloaders = [NameListReloader(database, compliance, 0.1) for compliance in processes]
        assert not reloaders[0].check(), "nothing newer stored yet"

        main(["sanctions", "import", *_files(tmp_path), "--published", "2023-01-02", "--database-url", url])
        assert not reloaders[0].check(), "a list published before the one in use is not loaded"
        assert processes[0].screen.name_list_version == shipped

        tasks = [asyncio.create_task(reloader.run()) for reloader in reloaders]
        try:
            await asyncio.to_thread(
                main, ["sanctions", "import", *_files(tmp_path), "--published", "2026-11-20", "--database-url", url]
            )
            await _until(lambda: all(p.screen.name_list_version != shipped for p in processes), 15)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for compliance in processes:
            label = compliance.screen.name_list_version
            assert label.startswith("ofac-sdn-names@2026-11-20#")
            record = compliance.screen_acceptance(LISTED_ALIAS, "q-1")
            assert record.outcome is Outcome.DENY
            assert record.versions["ofac-sdn-names"] == label, "the decision names the list it used"
        assert not reloaders[0].check(), "the list in use is not loaded again"
    finally:
        database.dispose()
