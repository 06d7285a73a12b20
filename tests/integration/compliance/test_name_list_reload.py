"""Hot reload of imported sanctions lists: two platform processes' compliance services (each with its own reloader
polling the same database) screen with the names and the wallets imported by ``creditmesh sanctions import`` within
seconds, without a restart; a list published before the one in use is not loaded."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from api.bootstrap import _compliance
from api.cli import main
from api.sanctions_reload import SanctionsListReloader
from api.settings import Settings
from compliance import BorrowerFacts, ComplianceService
from compliance.decisions import Outcome
from store.db import Database
from tests.integration.compliance.test_sanctions_import import LISTED_WALLET, _files
from tests.support.screening import screen_accept

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
        shipped_addresses = processes[0].screen.addresses.version.label
        reloaders = [SanctionsListReloader(database, compliance, 0.1) for compliance in processes]
        assert not reloaders[0].check(), "nothing newer stored yet"

        main(["sanctions", "import", *_files(tmp_path), "--published", "2023-01-02", "--database-url", url])
        assert not reloaders[0].check(), "a list published before the one in use is not loaded"
        assert processes[0].screen.name_list_version == shipped

        tasks = [asyncio.create_task(reloader.run()) for reloader in reloaders]
        try:
            await asyncio.to_thread(
                main, ["sanctions", "import", *_files(tmp_path), "--published", "2026-11-20", "--database-url", url]
            )
            await _until(
                lambda: all(
                    p.screen.name_list_version != shipped and p.screen.addresses.version.label != shipped_addresses
                    for p in processes
                ),
                15,
            )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for compliance in processes:
            label = compliance.screen.name_list_version
            assert label.startswith("ofac-sdn-names@2026-11-20#")
            record = screen_accept(compliance, LISTED_ALIAS, "q-1")
            assert record.outcome is Outcome.DENY
            assert record.versions["ofac-sdn-names"] == label, "the decision names the list it used"
            addresses = compliance.screen.addresses.version.label
            assert addresses.startswith("ofac-sdn-digital-currency-addresses@2026-11-20#")
            wallet = screen_accept(compliance, BorrowerFacts("b-2", LISTED_WALLET, "Jane Roe", "US-FL"), "q-2")
            assert wallet.outcome is Outcome.DENY, "the import's wallets, without a restart"
            assert wallet.versions["ofac-sdn-digital-currency-addresses"] == addresses
        assert not reloaders[0].check(), "the list in use is not loaded again"
    finally:
        database.dispose()
