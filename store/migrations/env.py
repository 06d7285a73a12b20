"""Alembic environment: runs on the connection ``store.db.migrate`` passes in (or the URL in the config); on SQLite
with the foreign keys off and checked after (``store.db.foreign_keys_checked_after``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from store.db import foreign_keys_checked_after
from store.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with foreign_keys_checked_after(connection), context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with foreign_keys_checked_after(conn), context.begin_transaction():
            context.run_migrations()


run()
