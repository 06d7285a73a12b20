"""API keys (admins): issue a key for any role — borrower, provider, admin, auditor — optionally expiring; list them
a page at a time; read one; set or clear its expiry; revoke it. The key itself is shown once, when issued."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from aggregator.borrower_accounts import BorrowerAccounts
from api import auth, refusals
from api.auth import ApiKeyInfo, KeyRevoked, Role, UnknownKeyId
from api.bootstrap import Platform
from api.deps import AdminPrincipal, PlatformDep
from api.idempotency import Idempotent
from api.input_types import AwareRfc3339DateTime
from api.key_subjects import KeySubjects, UnknownSubject, check_subject
from api.pagination import DEFAULT_LIMIT, CursorParam, Limit, Page, decode_cursor, page
from providers.registry import ProviderRegistry
from store.borrowers import SqlBorrowerStore

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])
API_KEYS_CURSOR = "api-keys"  # its cursors name it (another list's is refused)


_EXPIRY = "RFC 3339 with a zone, later than now (a moment already past: 422). Left out: lasts until revoked"


def _later_than_now(moment: datetime | None) -> datetime | None:
    """An issued key's expiry: a moment already past is refused (the key would never authenticate)."""
    if moment is not None and moment <= datetime.now(UTC):
        raise ValueError("already past: a new key must expire later (to end a key now, revoke it)")
    return moment


#: the expiry of a key being issued
FutureExpiry = Annotated[AwareRfc3339DateTime | None, AfterValidator(_later_than_now)]


class SubjectKeyIn(BaseModel):
    """A borrower key acts for a registered borrower (its id), a provider key for a registered provider (its id)."""

    model_config = ConfigDict(extra="forbid")

    role: Literal[Role.BORROWER, Role.PROVIDER]
    subject_id: str = Field(min_length=1, max_length=64)
    label: str = Field(min_length=1, max_length=128, description="who or what holds the key")
    expires_at: FutureExpiry = Field(default=None, description=_EXPIRY)


class StaffKeyIn(BaseModel):
    """Admin and auditor keys act for no subject."""

    model_config = ConfigDict(extra="forbid")

    role: Literal[Role.ADMIN, Role.AUDITOR]
    label: str = Field(min_length=1, max_length=128, description="who or what holds the key")
    expires_at: FutureExpiry = Field(default=None, description=_EXPIRY)


ApiKeyIn = Annotated[SubjectKeyIn | StaffKeyIn, Field(discriminator="role")]


class ExpiryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_at: AwareRfc3339DateTime | None = Field(
        description="the new expiry (a moment already past expires the key now), or null: never expires"
    )


class ApiKeyOut(BaseModel):
    id: str = Field(description="the key's public id; also its OAuth2 client_id")
    role: Role
    subject_id: str | None
    label: str
    state: str = Field(description="active, expired or revoked")
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    bootstrap: bool = Field(description="the admin key read from CREDITMESH_ADMIN_API_KEY")


class IssuedKeyOut(ApiKeyOut):
    key: str = Field(description="the API key itself (send it as X-API-Key, or as client_secret): shown once")


def _out(info: ApiKeyInfo) -> ApiKeyOut:
    return ApiKeyOut(
        id=info.key_id,
        role=info.role,
        subject_id=info.subject_id,
        label=info.label,
        state=info.state(datetime.now(UTC)),
        created_at=info.created_at,
        expires_at=info.expires_at,
        revoked_at=info.revoked_at,
        bootstrap=info.bootstrap,
    )


def _subjects(platform: Platform) -> KeySubjects:
    """Who a key may act for on the running platform: its borrowers, its provider registry as it is now."""
    registry = platform.providers
    deregistered = registry.deregistered if isinstance(registry, ProviderRegistry) else lambda _: False
    return KeySubjects(BorrowerAccounts(SqlBorrowerStore(platform.database)).exists, registry, deregistered)


def _refused(err: auth.ApiKeyError) -> refusals.Refusal:
    if isinstance(err, UnknownKeyId):
        return refusals.API_KEY_NOT_FOUND(str(err))
    if isinstance(err, UnknownSubject):
        return refusals.KEY_SUBJECT_NOT_FOUND(str(err))
    if isinstance(err, KeyRevoked):
        return refusals.API_KEY_REVOKED(str(err))
    return refusals.INVALID_KEY_REQUEST(str(err))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=IssuedKeyOut, dependencies=[Idempotent])
async def issue_api_key(body: ApiKeyIn, principal: AdminPrincipal, platform: PlatformDep) -> IssuedKeyOut:
    """A new key for any role. The response carries the key once; only its hash is stored."""

    subject = body.subject_id if isinstance(body, SubjectKeyIn) else None

    def issue() -> auth.IssuedKey:
        if subject is not None:  # a key for no subject (admin, auditor) needs no look at who is there
            check_subject(_subjects(platform), Role(body.role), subject)
        actor = auth.actor_of(principal)
        return auth.issue(platform.database, Role(body.role), subject, body.label, body.expires_at, actor=actor)

    try:
        issued = await asyncio.to_thread(issue)
    except auth.ApiKeyError as err:
        raise _refused(err) from err
    return IssuedKeyOut(**_out(issued.info).model_dump(), key=issued.key)


@router.get("", response_model=Page[ApiKeyOut])
async def list_api_keys(
    request: Request,
    _: AdminPrincipal,
    platform: PlatformDep,
    role: Role | None = None,
    include_revoked: Annotated[bool, Query(description="list revoked keys too")] = False,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[ApiKeyOut]:
    """Every key (never the key itself), newest first, a page at a time; ``role`` narrows to one role."""
    after = decode_cursor(API_KEYS_CURSOR, cursor)
    rows = await asyncio.to_thread(auth.list_keys, platform.database, after, limit + 1, role, include_revoked)
    return page(request, API_KEYS_CURSOR, rows, limit, lambda info: (info.created_at, info.key_id), _out)


@router.get("/{key_id}", response_model=ApiKeyOut)
async def get_api_key(key_id: str, _: AdminPrincipal, platform: PlatformDep) -> ApiKeyOut:
    try:
        return _out(await asyncio.to_thread(auth.key_info, platform.database, key_id))
    except auth.ApiKeyError as err:
        raise _refused(err) from err


@router.patch("/{key_id}", response_model=ApiKeyOut)
async def set_api_key_expiry(
    key_id: str, body: ExpiryIn, principal: AdminPrincipal, platform: PlatformDep
) -> ApiKeyOut:
    """Set the key's expiry (it stops authenticating then, its tokens too) or clear it with null."""
    actor = auth.actor_of(principal)
    try:
        return _out(await asyncio.to_thread(auth.set_expiry, platform.database, key_id, body.expires_at, actor=actor))
    except auth.ApiKeyError as err:
        raise _refused(err) from err


@router.delete("/{key_id}", response_model=ApiKeyOut)
async def revoke_api_key(key_id: str, principal: AdminPrincipal, platform: PlatformDep) -> ApiKeyOut:
    """Revoke the key at once (its tokens too); the record stays, listed with ``include_revoked``. Revoking the
    bootstrap admin key locks it out until ``CREDITMESH_ADMIN_API_KEY`` is set to a new key."""
    try:
        return _out(await asyncio.to_thread(auth.revoke, platform.database, key_id, actor=auth.actor_of(principal)))
    except auth.ApiKeyError as err:
        raise _refused(err) from err
