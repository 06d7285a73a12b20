"""Engine, sessions, the unit of work, and migrations.

SQLite under ``./.creditmesh/`` is the local default and serves one process; PostgreSQL (psycopg 3) when
``CREDITMESH_DATABASE_URL`` says so. The schema is always built by Alembic (one linear history)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: the advisory lock's first key while a process migrates (the second: the schema's name hashed)
MIGRATION_LOCK_KEY = 0x63D6  # "cm"


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given without a driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(
    url: str,
    sqlite_pragmas: Callable[[object, object], None] | None = None,
    pool_size: int = 10,
    max_overflow: int = 20,
) -> Engine:
    """An engine for ``url``; SQLite gets its folder and ``sqlite_pragmas`` (the platform's by default) on connect."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = make_url(url).database  # None or "" for ``sqlite://`` (in memory)
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", sqlite_pragmas or _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow)
    _ping_when_idle(engine)
    _track_writes(engine)
    return engine


#: ``Connection.info``'s flag: whether the connection's transaction has sent anything but a SELECT (PostgreSQL)
_WROTE = "creditmesh.wrote"


def _track_writes(engine: Engine) -> None:
    """Mark a PostgreSQL connection's transaction as written to at its first statement that is not a ``SELECT``, so
    that a unit of work that only read can end with COMMIT (``UnitOfWork.__exit__``). Conservative: any other
    statement (a data-modifying ``WITH``, a ``SAVEPOINT``, DDL) counts as a write."""

    @event.listens_for(engine, "begin")
    def began(connection: Connection) -> None:
        connection.info[_WROTE] = False

    @event.listens_for(engine, "before_cursor_execute")
    def executing(connection: Connection, _cursor: object, statement: str, *_: object) -> None:
        if not connection.info.get(_WROTE, True) and statement.lstrip()[:6].upper() != "SELECT":
            connection.info[_WROTE] = True


def _read_only(session: Session) -> bool:
    """Whether ``session``'s open transaction, on PostgreSQL, has only read: nothing sent but SELECTs (see
    ``_track_writes``) and nothing added, changed or deleted waiting for a flush. Not one whose flush failed (a commit
    that raised ``IntegrityError``, which the caller caught): SQLAlchemy has rolled it back, and it refuses every use
    but a rollback, which ``close()`` does."""
    if not session.in_transaction() or not session.is_active or session.new or session.dirty or session.deleted:
        return False
    connection = session.connection()  # the transaction's own (one engine per session)
    return connection.dialect.name == "postgresql" and connection.info.get(_WROTE) is False


#: seconds a pooled PostgreSQL connection may have been idle and still be used without a ping first
PING_IDLE_AFTER = 1.0
_CHECKED_IN = "creditmesh.checked_in"


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection at checkout only when it has been idle longer than :data:`PING_IDLE_AFTER`, and
    replace it when the ping fails (``pool_pre_ping`` as SQLAlchemy's pool events let one write it, with a
    threshold). ``pool_pre_ping`` pinged on every checkout: a round trip, and a transaction of the server's own, per
    unit of work — as many as the units of work themselves on the request path (an accept's four, say). A connection
    back in use within the second has just worked; should the server go away meanwhile (a restart), the first
    statement to fail on one of them is a disconnect, on which SQLAlchemy invalidates every connection of the pool,
    so the next checkouts connect afresh, and the unit of work that met it fails cleanly (a 503 at the API) as one
    in flight during a restart does with any ping."""

    @event.listens_for(engine, "checkin")
    def checked_in(_dbapi_connection: object, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, _proxy: object) -> None:
        since = record.info.get(_CHECKED_IN)
        if since is None or time.monotonic() - since <= PING_IDLE_AFTER:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as err:  # the pool connects afresh and checks out again
            raise DisconnectionError(f"a pooled connection idle since {since:.1f} did not answer a ping") from err


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten with zeros, not left in free pages
    cursor.close()


class ForeignKeysBroken(RuntimeError):
    """A migration on SQLite left rows whose foreign key names no row (``PRAGMA foreign_key_check``): it is rolled
    back."""


#: ``ConnectionPoolEntry.info``'s flag: a SQLite connection whose foreign keys a migration turned off, turned on
#: again when it goes back to the pool (the pragma is a no-op until the migration's transaction ends)
_FOREIGN_KEYS_OFF = "creditmesh.foreign_keys_off"


def _foreign_keys_back_on(dbapi_connection: Any, record: Any) -> None:
    if record.info.pop(_FOREIGN_KEYS_OFF, False) and dbapi_connection is not None:
        dbapi_connection.execute("PRAGMA foreign_keys=ON")


def _foreign_keys_on(connection: Connection) -> bool:
    return bool(connection.exec_driver_sql("PRAGMA foreign_keys").scalar())


@contextmanager
def foreign_keys_checked_after(connection: Connection) -> Iterator[None]:
    """On SQLite, the foreign keys off while migrations run on ``connection`` (elsewhere nothing): a migration that
    rebuilds a parent table in batch mode (copy, ``DROP TABLE``, rename) otherwise had the drop's implicit
    ``DELETE`` fire its children's ``ON DELETE`` actions — 0022's downgrade deleted every outbox delivery — or fail
    (0032's, on a loan of a quote). ``PRAGMA foreign_key_check`` runs after them, and any row it reports raises
    ``ForeignKeysBroken`` (the caller's transaction rolls back). The pragma is a no-op inside a transaction that has
    written already (a test's rows before its migration): then the keys stay on, as before. They are on again once
    the transaction ends, when the connection goes back to the pool. The transaction is begun here, before the
    migrations' first statement, so that their DDL is in it too (pysqlite begins one only before a DML statement)."""
    if connection.dialect.name != "sqlite" or not _foreign_keys_on(connection):
        yield
        return
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    if _foreign_keys_on(connection):  # inside a transaction that wrote: enforced throughout, nothing to check
        log.warning("migrations on SQLite run with the foreign keys on: a transaction was open before them")
        yield
        return
    if not event.contains(connection.engine.pool, "checkin", _foreign_keys_back_on):
        event.listen(connection.engine.pool, "checkin", _foreign_keys_back_on)
    connection.info[_FOREIGN_KEYS_OFF] = True
    if not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        # pysqlite begins a transaction only before a DML statement, and a batch rebuild's CREATE TABLE came
        # before it: a failed migration was rolled back around its `_alembic_tmp_` table, left for the next to fail on
        connection.exec_driver_sql("BEGIN")
    yield
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        rows = ", ".join(f"{table} row {rowid} → {parent}" for table, rowid, parent, _ in broken[:10])
        raise ForeignKeysBroken(
            f"the migration left {len(broken)} row(s) whose foreign key names no row ({rows}): rolled back"
        )


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several processes start on one database at once (deploy/): one migrates, the others wait for it and
            # find the schema at head. A transaction-scoped lock goes with the transaction it guards, so a restart
            # of PostgreSQL cannot leave it held or lose it silently (unlike a lease's).
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key, hashtext(current_schema()))"), {"key": MIGRATION_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class UnitOfWork:
    """One transaction: services call ``commit()``; leaving without it rolls back what it wrote. Repositories never
    commit.

    A unit of work left normally after it only read ends with COMMIT on PostgreSQL, not ROLLBACK: the same for the
    database (nothing to keep or undo), but psycopg forgets, and deallocates, every statement prepared on the
    connection at a ROLLBACK (``BaseConnection._rollback_gen``). Pooled connections go from one unit of work to the
    next, so one read-only unit of work (a GET route's, a poll's) cost the request paths' statements their prepared
    plans there: PostgreSQL planned them again until psycopg had seen each five more times (``prepare_threshold``)."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._factory = session_factory

    def __enter__(self) -> UnitOfWork:
        self.session = self._factory()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None and _read_only(self.session):
            # nothing was written: should the COMMIT fail, close() rolls back (or the pool drops a broken connection)
            with suppress(DBAPIError):
                self.session.commit()
        # close() rolls back what was not committed and detaches the objects with their loaded state intact.
        self.session.close()

    def commit(self) -> None:
        self.session.commit()


class Database:
    """The engine and the session factory of one process; with ``readonly_url`` (a replica, or a read-only role on
    the primary: ``CREDITMESH_DATABASE_READONLY_URL``) a second engine for reporting reads (``read_only``)."""

    def __init__(self, url: str, readonly_url: str | None = None) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.readonly_url = normalize_url(readonly_url) if readonly_url else None
        self._reader: Engine | None = None
        if self.readonly_url is not None and self.readonly_url != self.url:
            reader = make_engine(self.readonly_url, pool_size=5, max_overflow=10)
            if reader.dialect.name == "postgresql":  # refused by the server if anything tried to write through it
                reader = reader.execution_options(postgresql_readonly=True)
            self._reader = reader
        self.reader_sessions = (
            self.sessions if self._reader is None else sessionmaker(self._reader, expire_on_commit=False)
        )

    @contextmanager
    def read_only(self) -> Iterator[UnitOfWork]:
        """A unit of work for reporting reads (lists of runs, decisions, reports) on the read-only URL, or on the
        primary when none is set. Never commit in it; what it reads may lag the primary by the replica's delay, so
        read what a request has just written with ``unit_of_work``."""
        with UnitOfWork(self.reader_sessions) as uow:
            yield uow

    def migrate(self) -> None:
        migrate(self.engine)

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        with UnitOfWork(self.sessions) as uow:
            yield uow

    def ping(self) -> None:
        """One round trip to the primary (``select 1``); raises what the driver raises when it does not answer."""
        with self.engine.connect() as connection:
            connection.execute(text("select 1"))

    def flush_deleted(self) -> None:
        """After an erasure: on SQLite, checkpoint and truncate the write-ahead log, whose older frames can still hold
        deleted rows (``secure_delete`` already zeroes them in the database file). On PostgreSQL dead tuples stay
        until VACUUM reclaims them (docs/security.md says so); nothing to do here."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def dispose(self) -> None:
        self.engine.dispose()
        if self._reader is not None:
            self._reader.dispose()
