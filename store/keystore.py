"""Subject data keys in a database of their own, apart from the one holding the ciphertext: each key wrapped
(AES-256-GCM, the subject id bound in) under a master key that lives outside both (an environment secret). Destroying
a subject's row shreds its PII; a backup of the ciphertext database alone holds no key at all.

On SQLite (the local default, ``<data dir>/subject-keys.db``) the store turns ``secure_delete`` on, so a destroyed
key's bytes are overwritten in the file, and keeps a rollback journal (no WAL file holding old pages). The table is
the store's own, created here: it is not part of the platform database's Alembic history."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, LargeBinary, MetaData, String, Table, bindparam, select

from compliance.errors import PiiError, SubjectKeyMissing
from compliance.pii import seal, subject_id_checked, unseal
from store.db import make_engine

_metadata = MetaData()
subject_keys = Table(
    "subject_keys",
    _metadata,
    Column("subject_id", String(64), primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: read on every credit request (the file's identity unsealed, the screened name sealed): built once, bound per call
#: (building it and its cache key cost twice as much as running it)
_WRAPPED_KEY = select(subject_keys.c.wrapped_key).where(subject_keys.c.subject_id == bindparam("subject_id"))


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA journal_mode=DELETE")
    cursor.close()


class SqlKeyStore:
    """``compliance.pii.KeyProvider`` on a separate SQL database (SQLite locally, a PostgreSQL of its own elsewhere).
    Holds across processes as far as its database does; each call is its own short transaction."""

    def __init__(self, url: str, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise PiiError("the master key must be 32 bytes")
        self._master = master_key
        # its own engine, pool and pragmas: the key store never shares a file with the ciphertext
        self.engine = make_engine(url, sqlite_pragmas=_sqlite_pragmas, pool_size=5, max_overflow=5)
        _metadata.create_all(self.engine)

    def create_key(self, subject_id: str) -> None:
        subject_id = subject_id_checked(subject_id)
        with self.engine.begin() as connection:
            exists = connection.execute(
                select(subject_keys.c.subject_id).where(subject_keys.c.subject_id == subject_id)
            ).first()
            if exists is None:
                wrapped = seal(self._master, os.urandom(32), subject_id.encode())
                connection.execute(
                    subject_keys.insert().values(
                        subject_id=subject_id, wrapped_key=wrapped, created_at=datetime.now(UTC)
                    )
                )

    def data_key(self, subject_id: str) -> bytes:
        with self.engine.connect() as connection:
            wrapped = connection.execute(_WRAPPED_KEY, {"subject_id": subject_id}).scalar()
        if wrapped is None:
            raise SubjectKeyMissing(f"no data key for subject {subject_id}")
        return unseal(self._master, wrapped, subject_id.encode())

    def destroy_key(self, subject_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(subject_keys.delete().where(subject_keys.c.subject_id == subject_id))

    def dispose(self) -> None:
        self.engine.dispose()
