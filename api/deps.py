"""Named FastAPI dependencies: the platform, the caller's principal, role guards."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from aggregator.borrower_store import StoredFile
from aggregator.borrowers import BorrowerFile
from aggregator.owed import Exposure
from api.auth import KeyRejected, Principal, Role, authenticate_caller
from api.bootstrap import Platform
from api.oauth import TokenService


# The dependencies are ``async def``, even those that only read: FastAPI runs a plain ``def`` dependency in a worker
# thread, a thread hop per dependency and request (tests/unit/api/test_dependencies.py checks the routes).
async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


# the OpenAPI document's security schemes, either one accepted, never both at once (``_credential``); auto_error off so
# that a missing credential is our 401 problem, not FastAPI's 403
api_key_header = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKey", auto_error=False, description="an API key issued by an admin"
)
bearer_token = HTTPBearer(
    scheme_name="Bearer",
    bearerFormat="JWT",
    auto_error=False,
    description="an OAuth2 client-credentials access token from POST /v1/oauth/token (client_id: the API key's id, "
    "client_secret: the API key); same roles as the key; not together with X-API-Key (401)",
)
_CHALLENGE = {"WWW-Authenticate": 'ApiKey, Bearer realm="creditmesh"'}


async def get_tokens(request: Request) -> TokenService | None:
    tokens: TokenService | None = getattr(request.app.state, "tokens", None)
    return tokens


_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="creditmesh", error="invalid_token"'}
#: request.state's name for the borrower's file loaded in the same worker-thread hop as the caller's key
_PRELOADED = "borrower_file_preloaded"


@dataclass(frozen=True, slots=True)
class _Credential:
    """What the caller presented: an API key, or a verified token's key id and role."""

    api_key: str | None = None
    key_id: str = ""
    role: Role | None = None


def _credential(
    tokens: TokenService | None,
    x_api_key: str | None,
    bearer: HTTPAuthorizationCredentials | None,
    authorization: str | None,
) -> _Credential:
    """One credential, or a 401 that says what is wrong with what was sent. ``authorization`` is the raw header:
    ``HTTPBearer`` without ``auto_error`` reads a token-less ``Bearer`` or another scheme as no header at all.

    An API key beside a bearer token is refused, even when both are valid: the platform never picks which of two
    identities acts. So is an API key beside an ``Authorization`` of any other form (another scheme, none, an empty
    one): a credential the platform does not read is not left to ride beside one it does (before 2026-11-29 another
    scheme beside a key was left alone, as a gateway's ``Basic``, though the document declares ``Authorization`` as
    the bearer token alone); without a key another scheme is named in the refusal."""
    scheme, token = get_authorization_scheme_param(authorization)  # as HTTPBearer itself reads the header
    if scheme.lower() == "bearer" and not token:
        raise HTTPException(401, "the Authorization: Bearer header carries no token", headers=_BEARER_CHALLENGE)
    if x_api_key and (bearer is not None or authorization is not None):
        raise HTTPException(
            401, "send one credential, X-API-Key or Authorization: Bearer, not both", headers=_CHALLENGE
        )
    if x_api_key:
        return _Credential(api_key=x_api_key)
    if scheme and bearer is None:
        raise HTTPException(
            401,
            f"Authorization scheme {scheme[:20]!r} is not accepted here: send an X-API-Key header or Authorization: "
            "Bearer with an access token from POST /v1/oauth/token",
            headers=_CHALLENGE,
        )
    if bearer is not None and bearer.credentials:
        if tokens is None:
            raise HTTPException(401, "bearer tokens are not configured on this platform", headers=_CHALLENGE)
        try:
            key_id, role = tokens.verify(bearer.credentials)
        except KeyRejected as err:
            raise HTTPException(401, str(err), headers=_BEARER_CHALLENGE) from err
        return _Credential(key_id=key_id, role=role)
    raise HTTPException(401, "missing X-API-Key header or Authorization: Bearer token", headers=_CHALLENGE)


class _FileUse(IntEnum):
    """What a route takes of the borrower's file: nothing, the file as stored (the identity still sealed:
    ``CurrentBorrowerAccount``), or the file with its identity opened (``CurrentBorrower``)."""

    NONE = 0
    STORED = 1
    OPENED = 2


@dataclass(frozen=True, slots=True)
class _RouteReads:
    """What a route takes with its caller, read in the worker-thread hop that reads the caller's key: the borrower's
    file (``file``), and the borrower's open principal (``exposure``: a route taking ``BorrowerExposure``)."""

    file: _FileUse = _FileUse.NONE
    exposure: bool = False


def _authenticated(platform: Platform, credential: _Credential, reads: _RouteReads) -> _Caller:
    """The caller's principal (blocking: reads its key); with ``reads.file``, a borrower's file too, in the same SQL
    statement as the key (``api.auth.authenticate_caller``) and the same worker thread — its identity opened (a
    key-store read, which raises PiiError when the key store fails) only for a route that takes ``CurrentBorrower``
    — and with ``reads.exposure`` the borrower's open principal after it (one hop a credit request fewer)."""
    file_use = reads.file
    with_file = file_use is not _FileUse.NONE
    try:
        if credential.api_key is not None:
            principal, stored = authenticate_caller(platform.database, key=credential.api_key, with_file=with_file)
        else:
            principal, stored = authenticate_caller(platform.database, key_id=credential.key_id, with_file=with_file)
    except KeyRejected as err:  # unknown, revoked or expired
        challenge = _CHALLENGE if credential.api_key is not None else _BEARER_CHALLENGE
        raise HTTPException(401, str(err), headers=challenge) from err
    if credential.api_key is None and principal.role is not credential.role:
        raise HTTPException(401, "the token's role is not its key's", headers=_BEARER_CHALLENGE)
    if with_file and principal.role is Role.BORROWER:
        opened = None if stored is None or file_use is not _FileUse.OPENED else platform.borrowers.file_of(stored)
        owing = platform.quoting.open_principal(opened.id) if opened is not None and reads.exposure else None
        return _Caller(principal, True, stored, opened, owing)
    return _Caller(principal)


@dataclass(frozen=True, slots=True)
class _Caller:
    principal: Principal
    loaded: bool = False
    stored: StoredFile | None = None
    borrower_file: BorrowerFile | None = None  # read with the key for a route that takes the opened file
    exposure: Exposure | None = None  # the borrower's open principal, for a route that takes it


async def get_principal(
    request: Request,
    x_api_key: Annotated[str | None, Depends(api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_token)],
) -> Principal:
    """The caller, by its API key (``X-API-Key``) or its access token (``Authorization: Bearer``). On a route that
    takes the borrower's file (``CurrentBorrower``), a borrower's file is read in the same worker-thread hop and kept
    for ``get_borrower_file``.

    The platform and the token service are read from the application's state here, not declared as dependencies:
    FastAPI solves a dependency's whole sub-tree again wherever it is declared (only the call is cached), and this
    one is declared by every route, often twice (a role guard and ``Idempotent``)."""
    platform, tokens = await get_platform(request), await get_tokens(request)
    credential = _credential(tokens, x_api_key, bearer, request.headers.get("authorization"))
    caller = await asyncio.to_thread(_authenticated, platform, credential, _route_reads(request))
    if caller.loaded:
        setattr(request.state, _PRELOADED, caller)
    return caller.principal


def _route_reads(request: Request) -> _RouteReads:
    """What the request's route takes of the borrower's file and exposure (its dependency tree walked once per
    route)."""
    dependant: Dependant | None = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return _RouteReads()
    # keyed by id, the dependant kept in the value so that its id is not reused (routes are few and live long)
    found = _ROUTES_READS.get(id(dependant))
    if found is None:
        use = (
            _FileUse.OPENED
            if _depends_on(dependant, get_borrower_file)
            else _FileUse.STORED
            if _depends_on(dependant, get_borrower_account)
            else _FileUse.NONE
        )
        reads = _RouteReads(use, _depends_on(dependant, get_borrower_exposure))
        found = _ROUTES_READS[id(dependant)] = (dependant, reads)
    return found[1]


def _depends_on(dependant: Dependant, call: object) -> bool:
    return any(sub.call is call or _depends_on(sub, call) for sub in dependant.dependencies)


_ROUTES_READS: dict[int, tuple[Dependant, _RouteReads]] = {}


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(*roles: Role):  # type: ignore[no-untyped-def]
    """The one role check: a dependency that lets only ``roles`` through (403 otherwise)."""

    async def guard(principal: CurrentPrincipal) -> Principal:
        _allow(principal, roles)
        return principal

    setattr(guard, _ROLES, roles)  # read by route_admits before the guard runs
    return Depends(guard)


#: the attribute naming the roles a dependency lets through (``require``'s guards, ``get_borrower_file``)
_ROLES = "creditmesh_roles"


def route_admits(request: Request, principal: Principal) -> bool:
    """Whether the role guards among the request's route's dependencies let ``principal`` through, known before they
    run: a dependency solved before them (the route's ``Idempotency-Key``) claims nothing for a caller they refuse."""
    dependant: Dependant | None = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return True
    found = _ROUTE_ROLES.get(id(dependant))
    if found is None:
        found = _ROUTE_ROLES[id(dependant)] = (dependant, tuple(_role_guards(dependant)))
    return all(principal.role in roles for roles in found[1])


def _role_guards(dependant: Dependant) -> list[tuple[Role, ...]]:
    found = []
    for sub in dependant.dependencies:
        roles = getattr(sub.call, _ROLES, None)
        if roles is not None:
            found.append(roles)
        found += _role_guards(sub)
    return found


_ROUTE_ROLES: dict[int, tuple[Dependant, tuple[tuple[Role, ...], ...]]] = {}


def _allow(principal: Principal, roles: tuple[Role, ...]) -> None:
    if principal.role not in roles:
        raise HTTPException(403, f"this operation needs the role {' or '.join(r.value for r in roles)}")


_BORROWER_ONLY = (Role.BORROWER,)


BorrowerPrincipal = Annotated[Principal, require(Role.BORROWER)]
AdminPrincipal = Annotated[Principal, require(Role.ADMIN)]
ReaderPrincipal = Annotated[Principal, require(Role.BORROWER, Role.ADMIN, Role.AUDITOR)]
AuditorPrincipal = Annotated[Principal, require(Role.AUDITOR, Role.ADMIN)]


async def get_borrower_file(request: Request, principal: CurrentPrincipal) -> BorrowerFile:
    """The borrower's file with its identity opened, for the routes that use the identity (a credit request's and an
    acceptance's screening): the one ``get_principal`` read with the caller's key (same hop), else read now. Only a
    borrower's (403 otherwise, as ``BorrowerPrincipal``'s guard answers), checked here rather than by a guard
    dependency of its own (one dependency fewer to solve on every credit request). A key store that fails raises
    PiiError (503 ``key-store-unavailable``)."""
    _allow(principal, _BORROWER_ONLY)
    caller: _Caller | None = getattr(request.state, _PRELOADED, None)
    if (
        caller is not None
        and caller.principal == principal
        and (caller.stored is None or caller.borrower_file is not None)
    ):
        account = caller.borrower_file
    else:
        platform = await get_platform(request)
        account = await asyncio.to_thread(platform.borrowers.load, str(principal.subject_id))
    if account is None:
        raise HTTPException(403, "this API key has no borrower account")
    return account


async def get_borrower_account(request: Request, principal: CurrentPrincipal) -> StoredFile:
    """The borrower's file as stored — account, KYC status, credit profile; the identity left sealed — for the routes
    that do not use the identity (the profile, KYC submission, webhooks, repayments), so that they never ask the key
    store and keep working while it is down. Read as ``get_borrower_file`` reads it."""
    _allow(principal, _BORROWER_ONLY)
    caller: _Caller | None = getattr(request.state, _PRELOADED, None)
    if caller is not None and caller.principal == principal:
        stored = caller.stored
    else:
        platform = await get_platform(request)
        stored = await asyncio.to_thread(platform.borrowers.stored, str(principal.subject_id))
    if stored is None:
        raise HTTPException(403, "this API key has no borrower account")
    return stored


async def get_borrower_exposure(request: Request, borrower: CurrentBorrower) -> Exposure:
    """The borrower's open principal (``QuotingService.open_principal``, no lock: the accept counts again under it)
    for a credit request's exposure check: the one ``get_principal`` read in the hop that read the caller's key and
    file, else read now."""
    caller: _Caller | None = getattr(request.state, _PRELOADED, None)
    if caller is not None and caller.exposure is not None and caller.borrower_file == borrower:
        return caller.exposure
    platform = await get_platform(request)
    return await asyncio.to_thread(platform.quoting.open_principal, borrower.id)


setattr(get_borrower_file, _ROLES, _BORROWER_ONLY)
setattr(get_borrower_account, _ROLES, _BORROWER_ONLY)
CurrentBorrower = Annotated[BorrowerFile, Depends(get_borrower_file)]
CurrentBorrowerAccount = Annotated[StoredFile, Depends(get_borrower_account)]
BorrowerExposure = Annotated[Exposure, Depends(get_borrower_exposure)]


def single_valued_query(request: Request) -> None:
    """No query parameter of this API is an array: one given twice is a 422 naming it (FastAPI kept the last value,
    so ``?borrower_id=&borrower_id=x`` was answered as ``?borrower_id=x``, an input the document calls invalid)."""
    names = [name for name, _ in request.query_params.multi_items()]
    if len(names) == len(set(names)):
        return
    repeated = sorted({name for name in names if names.count(name) > 1})
    raise RequestValidationError(
        [
            {"type": "value_error", "loc": ("query", name), "msg": "given more than once: it takes one value"}
            for name in repeated
        ]
    )


def _declared_query(dependant: Dependant) -> frozenset[str]:
    """The query parameters ``dependant`` and its sub-dependencies declare (by the name a client sends)."""
    names = {field.alias for field in dependant.query_params}
    for sub_dependant in dependant.dependencies:
        names |= _declared_query(sub_dependant)
    return frozenset(names)


_DECLARED_QUERY: dict[int, frozenset[str]] = {}


def declared_query_only(request: Request) -> None:
    """A query parameter the operation does not take is a 422 naming it, not ignored: ``GET /v1/loans?flags=unfunded``
    answered every loan, ``/v1/decisions?borrower=x`` (for ``borrower_id``) every decision, as if filtered."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if not isinstance(dependant, Dependant) or not request.query_params:
        return
    declared = _DECLARED_QUERY.get(id(dependant))
    if declared is None:
        declared = _DECLARED_QUERY[id(dependant)] = _declared_query(dependant)
    unknown = sorted({name for name in request.query_params if name not in declared})
    if unknown:
        takes = ", ".join(sorted(declared)) or "none"
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", name),
                    "msg": f"not a parameter of this operation (it takes: {takes})",
                }
                for name in unknown
            ]
        )
