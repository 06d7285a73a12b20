"""Several API processes starting at once on a new PostgreSQL database (``creditmesh serve --processes N``) each
register the bootstrap admin key: none fails on the others' insert, and the key is registered once."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from api.auth import authenticate, ensure_bootstrap_admin
from store.api import ApiKeyRepository
from store.db import Database

pytestmark = pytest.mark.integration

KEY = "cm_admin_bootstrap_race_test_key"


def test_processes_starting_together_register_the_bootstrap_key_once(postgres_schema: Callable[[str], str]) -> None:
    url = postgres_schema("bootstrap_race")
    Database(url).migrate()
    databases = [Database(url) for _ in range(4)]
    start = threading.Barrier(len(databases))
    failures: list[BaseException] = []

    def start_process(database: Database) -> None:
        start.wait()
        try:
            ensure_bootstrap_admin(database, KEY)
        except BaseException as err:  # collected and asserted below
            failures.append(err)

    threads = [threading.Thread(target=start_process, args=(database,)) for database in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert failures == []
        assert authenticate(databases[0], KEY).role.value == "admin"
        with databases[0].unit_of_work() as uow:
            assert len(ApiKeyRepository(uow.session).live_bootstrap_keys()) == 1
    finally:
        for database in databases:
            database.dispose()
