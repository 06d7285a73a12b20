"""API keys with four roles. A key is shown once when issued and stored only as its SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from store.api import ApiKeyRow
from store.db import Database


class Role(StrEnum):
    BORROWER = "borrower"
    PROVIDER = "provider"
    ADMIN = "admin"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    subject_id: str | None

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.ADMIN, Role.AUDITOR)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_key(database: Database, role: Role, subject_id: str | None, label: str) -> str:
    """A new random key for ``role``; the caller shows it once."""
    key = f"cm_{role.value}_{secrets.token_urlsafe(24)}"
    ensure_key(database, key, role, subject_id, label)
    return key


def ensure_key(database: Database, key: str, role: Role, subject_id: str | None, label: str) -> None:
    """Register ``key`` (stored as its hash) unless it is registered already, e.g. the bootstrap admin key."""
    with database.unit_of_work() as uow:
        if uow.session.get(ApiKeyRow, hash_key(key)) is None:
            row = ApiKeyRow(
                key_hash=hash_key(key),
                role=role.value,
                subject_id=subject_id,
                label=label,
                created_at=datetime.now(UTC),
            )
            uow.session.add(row)
            uow.commit()


def lookup(database: Database, key: str) -> Principal | None:
    with database.unit_of_work() as uow:
        row = uow.session.get(ApiKeyRow, hash_key(key))
        return None if row is None else Principal(Role(row.role), row.subject_id)
