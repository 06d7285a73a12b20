"""Persistence owned by the API: borrower accounts and API keys (issued, listed, expired and revoked by admins)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, String, false, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from compliance.audit import AuditKind
from store.base import Base
from store.compliance import SqlAuditLog
from store.types import UtcDateTime


class BorrowerRow(Base):
    __tablename__ = "borrowers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    wallet_address: Mapped[str] = mapped_column(String(42), unique=True)
    jurisdiction: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: where the borrower's loan events go (signed with ``webhook_secret_sealed``, opened by providers.secrets)
    webhook_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    webhook_secret_sealed: Mapped[str | None] = mapped_column(String(512), nullable=True)


def lock_borrower(session: Session, borrower_id: str, *, exclusive: bool) -> None:
    """Lock the borrower's account row until the caller's transaction ends, on PostgreSQL: ``exclusive`` (``FOR
    UPDATE``) for an erasure, else ``FOR KEY SHARE`` for a decision written about the borrower — the lock a foreign
    key to the row (a credit request's, a quote's, a loan's) takes anyway. An erasure thus waits for the decisions
    being written, and they for it, so its retention check sees every decision committed before it. SQLite has one
    writer at a time: an exclusive lock there is a write (an UPDATE that changes nothing), which takes the database's
    write lock for the transaction, before the erasure reads anything; a shared one is nothing."""
    if session.get_bind().dialect.name == "postgresql":
        statement = select(BorrowerRow.id).where(BorrowerRow.id == borrower_id)
        session.execute(statement.with_for_update(read=not exclusive, key_share=not exclusive))
    elif exclusive:
        session.execute(
            update(BorrowerRow).where(BorrowerRow.id == borrower_id).values(jurisdiction=BorrowerRow.jurisdiction)
        )


class ApiKeyRow(Base):
    """An API key, stored only as its SHA-256 hash. ``key_id`` is its public name (listing, revoking, and the OAuth2
    ``client_id``); ``subject_id`` is the borrower or provider it acts for. A revoked key stays, for the record;
    ``bootstrap`` marks the admin key read from ``CREDITMESH_ADMIN_API_KEY``, revoked when that setting changes."""

    __tablename__ = "api_keys"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    role: Mapped[str] = mapped_column(String(16), index=True)
    subject_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    label: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    bootstrap: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key's columns as read by the request path (``store.borrowers.read_caller``), without the ORM."""

    key_id: str
    role: str
    subject_id: str | None
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    bootstrap: bool


#: the columns of an ``ApiKeyRecord``, in its order
API_KEY_COLUMNS = (
    ApiKeyRow.key_id,
    ApiKeyRow.role,
    ApiKeyRow.subject_id,
    ApiKeyRow.label,
    ApiKeyRow.created_at,
    ApiKeyRow.expires_at,
    ApiKeyRow.revoked_at,
    ApiKeyRow.bootstrap,
)


class ApiKeyRepository:
    """Reads and stages API keys in the caller's unit of work (which commits)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def by_hash(self, key_hash: str) -> ApiKeyRow | None:
        return self._session.get(ApiKeyRow, key_hash)

    def by_id(self, key_id: str) -> ApiKeyRow | None:
        return self._session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id))

    def add(self, row: ApiKeyRow, actor: str | None = None) -> None:
        """Stage a new key; the audit log records its issuance, and by whom (``actor``: the issuing key as
        ``role:key id``, ``cli``, or None for the platform itself), in the same transaction."""
        self._session.add(row)
        self._audit(AuditKind.KEY_ISSUED, row, row.created_at, actor, expiresAt=row.expires_at)

    def revoked(self, row: ApiKeyRow, now: datetime, actor: str | None, why: str) -> None:
        """Revoke ``row`` now; the audit log records it, by whom and why, in the same transaction."""
        row.revoked_at = now
        self._audit(AuditKind.KEY_REVOKED, row, now, actor, why=why)

    def expiry_set(self, row: ApiKeyRow, expires_at: datetime | None, now: datetime, actor: str | None) -> None:
        """Set (or clear) ``row``'s expiry; the audit log records it and by whom, in the same transaction."""
        row.expires_at = expires_at
        self._audit(AuditKind.KEY_EXPIRY_SET, row, now, actor, expiresAt=expires_at)

    def _audit(self, kind: AuditKind, row: ApiKeyRow, at: datetime, actor: str | None, **more: object) -> None:
        """The audit entry of a change of ``row``: the key, its role and subject, who changed it, and ``more``."""
        data = {"keyId": row.key_id, "role": row.role, "subjectId": row.subject_id, **more, "by": actor}
        SqlAuditLog(self._session).append(kind, row.subject_id or row.role, data, at)

    def unrevoked_keys_of(self, role: str, subject_id: str) -> list[ApiKeyRow]:
        """The keys of ``subject_id`` in ``role`` not yet revoked (expired ones included), locked for update."""
        query = select(ApiKeyRow).where(
            ApiKeyRow.role == role, ApiKeyRow.subject_id == subject_id, ApiKeyRow.revoked_at.is_(None)
        )
        return list(self._session.scalars(query.with_for_update()))

    def live_bootstrap_keys(self) -> list[ApiKeyRow]:
        query = select(ApiKeyRow).where(ApiKeyRow.bootstrap.is_(True), ApiKeyRow.revoked_at.is_(None))
        return list(self._session.scalars(query))

    def page(
        self,
        after: tuple[datetime, str] | None,
        limit: int,
        role: str | None = None,
        include_revoked: bool = False,
    ) -> list[ApiKeyRow]:
        """Newest first, ``limit`` rows strictly after the (created_at, key_id) cursor."""
        query = select(ApiKeyRow)
        if role is not None:
            query = query.where(ApiKeyRow.role == role)
        if not include_revoked:
            query = query.where(ApiKeyRow.revoked_at.is_(None))
        if after is not None:
            created_at, key_id = after
            query = query.where(
                (ApiKeyRow.created_at < created_at)
                | ((ApiKeyRow.created_at == created_at) & (ApiKeyRow.key_id < key_id))
            )
        query = query.order_by(ApiKeyRow.created_at.desc(), ApiKeyRow.key_id.desc()).limit(limit)
        return list(self._session.scalars(query))
