"""Persistence of ``Idempotency-Key`` records (api.idempotency): one row per (client, key), claimed while its request
runs and holding the response once it has one; shared by every process of the platform through the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.types import JSON

from store.base import Base
from store.types import UtcDateTime


class IdempotencyRow(Base):
    """``state`` is ``running`` (a request holds the key until ``locked_until``) or ``done`` (the stored response).
    ``fingerprint`` is the SHA-256 of the method, path and body the key was first used with."""

    __tablename__ = "idempotency_keys"

    client: Mapped[str] = mapped_column(String(160), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(8))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    headers: Mapped[list[list[str]] | None] = mapped_column(JSON, nullable=True)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    locked_until: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class IdempotencyRepository:
    """Reads and stages records in the caller's unit of work (which commits)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, client: str, key: str, for_update: bool = False) -> IdempotencyRow | None:
        query = select(IdempotencyRow).where(IdempotencyRow.client == client, IdempotencyRow.key == key)
        if for_update:
            query = query.with_for_update()
        return self._session.scalar(query)

    def add(self, row: IdempotencyRow) -> None:
        self._session.add(row)

    def remove(self, client: str, key: str, fingerprint: str) -> None:
        self._session.execute(
            delete(IdempotencyRow).where(
                IdempotencyRow.client == client,
                IdempotencyRow.key == key,
                IdempotencyRow.fingerprint == fingerprint,
                IdempotencyRow.state == "running",
            )
        )

    def purge_expired(self, now: datetime) -> int:
        result = self._session.execute(delete(IdempotencyRow).where(IdempotencyRow.expires_at <= now))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
