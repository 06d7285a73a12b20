"""One linear Alembic history builds exactly the schema the models declare, on SQLite and on PostgreSQL: its tables,
columns, indexes and constraints, and each column's type and server default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from store.db import MIGRATIONS_DIR, Database
from store.models import Base

pytestmark = pytest.mark.integration


def test_history_is_linear() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1, f"several heads: {script.get_heads()}"


def _diff(database: Database) -> list[object]:
    database.migrate()
    database.migrate()  # idempotent
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, Base.metadata))


def test_sqlite_schema_matches_models(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'schema.db'}")
    try:
        assert _diff(database) == []
    finally:
        database.dispose()


def test_postgres_schema_matches_models(postgres_schema: Callable[[str], str]) -> None:
    database = Database(postgres_schema("schema_test"))
    try:
        assert _diff(database) == []
    finally:
        database.dispose()
