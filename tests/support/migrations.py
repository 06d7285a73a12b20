"""Migrations run part of the way, for the tests of one migration over rows stored before it."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from store.db import MIGRATIONS_DIR


def upgrade(connection: Connection, revision: str) -> None:
    """The schema on ``connection`` (in its transaction) upgraded to ``revision`` (``"head"``: every migration)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def downgrade(connection: Connection, revision: str) -> None:
    """The schema on ``connection`` (in its transaction) downgraded to ``revision``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.downgrade(config, revision)
