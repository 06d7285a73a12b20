"""API keys with four roles, managed by admins: issued (shown once, stored only as its SHA-256 hash), listed,
given an expiry, revoked. A key's public ``key_id`` names it in listings and is its OAuth2 ``client_id``. The bootstrap
admin key comes from ``CREDITMESH_ADMIN_API_KEY``; starting with a different value revokes the previous one."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aggregator.borrower_store import StoredFile
from store.api import ApiKeyRecord, ApiKeyRepository, ApiKeyRow
from store.borrower_file import read_caller
from store.db import Database

BOOTSTRAP_LABEL = "bootstrap admin"
#: the actor of a bootstrap key's revocation by a start with a newer CREDITMESH_ADMIN_API_KEY
BOOTSTRAP_ROTATION = "platform:bootstrap-rotation"

log = logging.getLogger(__name__)


class Role(StrEnum):
    BORROWER = "borrower"
    PROVIDER = "provider"
    ADMIN = "admin"
    AUDITOR = "auditor"


#: roles whose keys act for one subject (a borrower account, a provider id); admins and auditors act for none
SUBJECT_ROLES = frozenset({Role.BORROWER, Role.PROVIDER})


class ApiKeyError(Exception):
    """Root of the API's key errors."""


class KeyRejected(ApiKeyError):
    """The presented key (or token) does not authenticate: unknown, revoked or expired (a 401)."""


class UnknownKeyId(ApiKeyError):
    """No key has this id (a 404)."""


class InvalidKeyRequest(ApiKeyError):
    """An issue or an expiry that cannot be honoured (a 422)."""


class KeyRevoked(ApiKeyError):
    """The key is revoked and stays so: it cannot be given an expiry (a 409)."""


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    subject_id: str | None
    key_id: str | None = None

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.ADMIN, Role.AUDITOR)


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What an admin sees of a key: never the key itself."""

    key_id: str
    role: Role
    subject_id: str | None
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    bootstrap: bool

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    @classmethod
    def of(cls, row: ApiKeyRow | ApiKeyRecord) -> ApiKeyInfo:
        return cls(
            row.key_id,
            Role(row.role),
            row.subject_id,
            row.label,
            row.created_at,
            row.expires_at,
            row.revoked_at,
            row.bootstrap,
        )


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: str  # shown once
    info: ApiKeyInfo


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _new_row(
    key: str, role: Role, subject_id: str | None, label: str, expires_at: datetime | None, bootstrap: bool
) -> ApiKeyRow:
    return ApiKeyRow(
        key_hash=hash_key(key),
        key_id=f"key_{secrets.token_hex(8)}",
        role=role.value,
        subject_id=subject_id,
        label=label,
        created_at=datetime.now(UTC),
        expires_at=expires_at,
        revoked_at=None,
        bootstrap=bootstrap,
    )


def _check_request(role: Role, subject_id: str | None) -> None:
    if role in SUBJECT_ROLES and not subject_id:
        raise InvalidKeyRequest(f"a {role.value} key acts for a subject: give subject_id")
    if role not in SUBJECT_ROLES and subject_id:
        raise InvalidKeyRequest(f"an {role.value} key acts for no subject: leave subject_id out")


def actor_of(principal: Principal) -> str:
    """Who acted, as the audit log and the records name it: the role and the id of the key (an admin's key names no
    subject, so its id says which admin)."""
    return principal.role.value if principal.key_id is None else f"{principal.role.value}:{principal.key_id}"


def issue(
    database: Database,
    role: Role,
    subject_id: str | None,
    label: str,
    expires_at: datetime | None = None,
    *,
    actor: str | None = None,
) -> IssuedKey:
    """A new random key for ``role`` (optionally expiring); the caller shows ``key`` once. ``actor``: who issued it
    (``actor_of``), for the audit log. InvalidKeyRequest for an expiry already past: a key issued expired would
    never authenticate (to end a key at once, revoke it)."""
    _check_request(role, subject_id)
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidKeyRequest(f"expires_at {expires_at.isoformat()} is already past: a key must expire later")
    key = f"cm_{role.value}_{secrets.token_urlsafe(24)}"
    row = _new_row(key, role, subject_id, label, expires_at, bootstrap=False)
    with database.unit_of_work() as uow:
        ApiKeyRepository(uow.session).add(row, actor)
        uow.commit()
    return IssuedKey(key, ApiKeyInfo.of(row))


def issue_key(database: Database, role: Role, subject_id: str | None, label: str, *, actor: str | None = None) -> str:
    """A new random key for ``role``; the caller shows it once."""
    return issue(database, role, subject_id, label, actor=actor).key


def ensure_key(database: Database, key: str, role: Role, subject_id: str | None, label: str) -> None:
    """Register ``key`` (stored as its hash) unless it is registered already (a test's or a run's fixed key)."""
    with database.unit_of_work() as uow:
        keys = ApiKeyRepository(uow.session)
        if keys.by_hash(hash_key(key)) is None:
            keys.add(_new_row(key, role, subject_id, label, None, bootstrap=False))
            uow.commit()


def ensure_bootstrap_admin(database: Database, key: str) -> list[str]:
    """Register ``key`` as the bootstrap admin key and revoke every bootstrap key registered before it (the setting
    was rotated); the ids revoked. A bootstrap key an admin revoked (or let expire) stays so: set a new one to get
    back in. A process still configured with an older key than the newest (a late or restarted one during a rolling
    rotation) revokes nothing: its key was revoked by the newer one's first start and stays revoked, and the newer
    key, registered after it, is not touched. Several processes starting at once on a new database (``creditmesh
    serve --processes N``) may insert it at the same moment: the one that loses finds it registered when it tries
    again."""
    try:
        return _ensure_bootstrap_admin(database, key)
    except IntegrityError:
        return _ensure_bootstrap_admin(database, key)


def _ensure_bootstrap_admin(database: Database, key: str) -> list[str]:
    now = datetime.now(UTC)
    with database.unit_of_work() as uow:
        keys = ApiKeyRepository(uow.session)
        current = keys.by_hash(hash_key(key))
        if current is None:
            current = _new_row(key, Role.ADMIN, None, BOOTSTRAP_LABEL, None, bootstrap=True)
            keys.add(current)
        elif not current.bootstrap and current.role == Role.ADMIN.value:
            current.bootstrap = True
        if ApiKeyInfo.of(current).state(now) != "active":
            uow.commit()
            log.warning(
                "CREDITMESH_ADMIN_API_KEY is a %s bootstrap key (%s): it stays so and no other key is revoked; "
                "set the current one",
                ApiKeyInfo.of(current).state(now),
                current.key_id,
            )
            return []
        revoked = []
        for row in keys.live_bootstrap_keys():
            if row.key_hash != current.key_hash and row.created_at < current.created_at:
                keys.revoked(row, now, BOOTSTRAP_ROTATION, "CREDITMESH_ADMIN_API_KEY set to a newer key")
                revoked.append(row.key_id)
        uow.commit()
    return revoked


def authenticate(database: Database, key: str, now: datetime | None = None) -> Principal:
    """The principal ``key`` acts as; :class:`KeyRejected` saying why if it is unknown, revoked or expired."""
    return authenticate_caller(database, key=key, now=now)[0]


def authenticate_caller(
    database: Database,
    *,
    key: str | None = None,
    key_id: str | None = None,
    with_file: bool = False,
    now: datetime | None = None,
) -> tuple[Principal, StoredFile | None]:
    """The principal of ``key`` (or of a token issued to ``key_id``: its key must still be live), and with
    ``with_file`` the stored file of the borrower it acts for (None for other roles and for a borrower key without an
    account), in ONE SQL statement; :class:`KeyRejected` as :func:`authenticate` and :func:`authenticate_key_id`."""
    now = now or datetime.now(UTC)
    if key is not None:
        found = read_caller(database, key_hash=hash_key(key), with_file=with_file)
        missing, named = "unknown API key", "this API key"
    else:
        found = read_caller(database, key_id=key_id, with_file=with_file)
        missing, named = "the token's API key no longer exists", "the token's API key"
    if found is None:
        raise KeyRejected(missing)
    record, stored = found
    info = ApiKeyInfo.of(record)
    state = info.state(now)
    if state != "active":
        raise KeyRejected(f"{named} is {state}")
    return Principal(info.role, info.subject_id, info.key_id), stored


def client_credentials(database: Database, client_id: str, client_secret: str) -> ApiKeyInfo:
    """The live key an OAuth2 client authenticates as: ``client_id`` is the key's id, ``client_secret`` the key."""
    now = datetime.now(UTC)
    with database.unit_of_work() as uow:
        row = ApiKeyRepository(uow.session).by_hash(hash_key(client_secret))
        # bytes: compare_digest raises TypeError for a non-ASCII str (a 500 for a form field anyone can send)
        if row is None or not secrets.compare_digest(row.key_id.encode(), client_id.encode("utf-8", "surrogatepass")):
            raise KeyRejected("unknown client or wrong secret")
        info = ApiKeyInfo.of(row)
    if info.state(now) != "active":
        raise KeyRejected(f"the client's API key is {info.state(now)}")
    return info


def authenticate_key_id(database: Database, key_id: str, now: datetime | None = None) -> Principal:
    """The principal of a token issued to ``key_id``: its key must still be live (not revoked, not expired)."""
    return authenticate_caller(database, key_id=key_id, now=now)[0]


def lookup(database: Database, key: str) -> Principal | None:
    """The principal of a usable ``key``, None for an unknown, revoked or expired one."""
    try:
        return authenticate(database, key)
    except KeyRejected:
        return None


def key_info(database: Database, key_id: str) -> ApiKeyInfo:
    with database.unit_of_work() as uow:
        row = ApiKeyRepository(uow.session).by_id(key_id)
        if row is None:
            raise UnknownKeyId(f"no API key {key_id!r}")
        return ApiKeyInfo.of(row)


def list_keys(
    database: Database,
    after: tuple[datetime, str] | None,
    limit: int,
    role: Role | None = None,
    include_revoked: bool = False,
) -> list[ApiKeyInfo]:
    with database.unit_of_work() as uow:
        rows = ApiKeyRepository(uow.session).page(after, limit, None if role is None else role.value, include_revoked)
        return [ApiKeyInfo.of(row) for row in rows]


def revoke(database: Database, key_id: str, *, actor: str | None = None) -> ApiKeyInfo:
    """Revoke the key at once (idempotent: a revoked key keeps its first revocation time, and its one audit entry)."""
    with database.unit_of_work() as uow:
        keys = ApiKeyRepository(uow.session)
        row = keys.by_id(key_id)
        if row is None:
            raise UnknownKeyId(f"no API key {key_id!r}")
        if row.revoked_at is None:
            keys.revoked(row, datetime.now(UTC), actor, "revoked by an admin")
            uow.commit()
        return ApiKeyInfo.of(row)


def revoke_subject_keys(
    session: Session, role: Role, subject_id: str, *, actor: str | None = None, why: str = ""
) -> list[str]:
    """Revoke every key that acts for ``subject_id`` in ``role``, in ``session``'s transaction (a deregistered
    provider's, in the transaction that disables its registration; the caller commits): the ids revoked."""
    keys = ApiKeyRepository(session)
    rows = keys.unrevoked_keys_of(role.value, subject_id)
    now = datetime.now(UTC)
    for row in rows:
        keys.revoked(row, now, actor, why)
    return [row.key_id for row in rows]


def set_expiry(database: Database, key_id: str, expires_at: datetime | None, *, actor: str | None = None) -> ApiKeyInfo:
    """Set (or with None clear) the key's expiry (a moment already past expires it now); a revoked key stays
    revoked."""
    with database.unit_of_work() as uow:
        keys = ApiKeyRepository(uow.session)
        row = keys.by_id(key_id)
        if row is None:
            raise UnknownKeyId(f"no API key {key_id!r}")
        if row.revoked_at is not None:
            raise KeyRevoked(f"API key {key_id!r} is revoked")
        keys.expiry_set(row, expires_at, datetime.now(UTC), actor)
        uow.commit()
        return ApiKeyInfo.of(row)
