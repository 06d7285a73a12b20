"""Reads outside a transaction, for the polls every API process runs several times a second.

A unit of work (``store.db.UnitOfWork``) that only reads still opens a transaction: ``BEGIN``, the read, and the
``COMMIT`` it ends with (a read-only unit of work ends with COMMIT, not ROLLBACK: psycopg forgets every prepared
statement of a connection at a ``ROLLBACK``, and a statement is prepared only after its fifth run on one connection,
so polls rolling back pooled connections twice a second had left the request path's statements never prepared and
PostgreSQL planning each anew — the caller's read: ~0.65 ms of planning for ~0.25 ms of execution).

A read here runs on a connection in autocommit: no ``BEGIN``, no ``COMMIT`` (one round trip where the unit of work
takes three), and the pool's reset on return finds no transaction to end. A single statement is its own transaction
and sees one snapshot; a read of several statements sees each its own, so use this only where that does not matter
(a poll of a counter or of a newest version)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from store.db import Database


@contextmanager
def autocommit_connection(engine: Engine) -> Iterator[Connection]:
    """A pooled connection in autocommit: each statement its own transaction (one round trip, no ``BEGIN`` and no
    ``COMMIT``/``ROLLBACK``), for a read of one statement or a write that is one statement."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield connection


@contextmanager
def autocommit_session(database: Database) -> Iterator[Session]:
    """A session for reads on a pooled connection in autocommit (never commit in it: each statement is its own
    transaction)."""
    with autocommit_connection(database.engine) as connection, Session(connection) as session:
        yield session
