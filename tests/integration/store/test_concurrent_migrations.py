"""Several processes starting on one fresh PostgreSQL schema at once (the API replicas of deploy/) migrate it once:
the others wait for the first and find it at head, none fails on a table created under it."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from store.db import Database

pytestmark = pytest.mark.integration


def test_three_processes_migrate_one_fresh_schema_at_once(postgres_schema: Callable[[str], str]) -> None:
    url = postgres_schema("concurrent_migrations")
    databases = [Database(url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            for future in [pool.submit(database.migrate) for database in databases]:
                future.result()  # each start-up's migration succeeded
        with databases[0].engine.connect() as connection:
            versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        assert len(versions) == 1
    finally:
        for database in databases:
            database.engine.dispose()
