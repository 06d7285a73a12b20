"""Named FastAPI dependencies: the platform, the caller's principal, role guards."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from aggregator.borrowers import BorrowerFile
from api.auth import KeyRejected, Principal, Role, authenticate, authenticate_key_id
from api.bootstrap import Platform
from api.oauth import TokenService


# The dependencies are ``async def``, even those that only read: FastAPI runs a plain ``def`` dependency in a worker
# thread, a thread hop per dependency and request (tests/unit/api/test_dependencies.py checks the routes).
async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


# the OpenAPI document's security schemes, either one accepted; auto_error off so that a missing credential is our
# 401 problem, not FastAPI's 403
api_key_header = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKey", auto_error=False, description="an API key issued by an admin"
)
bearer_token = HTTPBearer(
    scheme_name="Bearer",
    bearerFormat="JWT",
    auto_error=False,
    description="an OAuth2 client-credentials access token from POST /v1/oauth/token (client_id: the API key's id, "
    "client_secret: the API key); same roles as the key",
)
_CHALLENGE = {"WWW-Authenticate": 'ApiKey, Bearer realm="creditmesh"'}


async def get_tokens(request: Request) -> TokenService | None:
    tokens: TokenService | None = getattr(request.app.state, "tokens", None)
    return tokens


async def get_principal(
    platform: PlatformDep,
    tokens: Annotated[TokenService | None, Depends(get_tokens)],
    x_api_key: Annotated[str | None, Depends(api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_token)],
) -> Principal:
    """The caller, by its API key (``X-API-Key``) or its access token (``Authorization: Bearer``)."""
    if x_api_key:
        try:
            return await asyncio.to_thread(authenticate, platform.database, x_api_key)
        except KeyRejected as err:  # unknown, revoked or expired
            raise HTTPException(401, str(err), headers=_CHALLENGE) from err
    if bearer is not None and bearer.credentials:
        if tokens is None:
            raise HTTPException(401, "bearer tokens are not configured on this platform", headers=_CHALLENGE)
        challenge = {"WWW-Authenticate": 'Bearer realm="creditmesh", error="invalid_token"'}
        try:
            key_id, role = tokens.verify(bearer.credentials)
            principal = await asyncio.to_thread(authenticate_key_id, platform.database, key_id)
        except KeyRejected as err:
            raise HTTPException(401, str(err), headers=challenge) from err
        if principal.role is not role:
            raise HTTPException(401, "the token's role is not its key's", headers=challenge)
        return principal
    raise HTTPException(401, "missing X-API-Key header or Authorization: Bearer token", headers=_CHALLENGE)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(*roles: Role):  # type: ignore[no-untyped-def]
    """The one role check: a dependency that lets only ``roles`` through (403 otherwise)."""

    async def guard(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise HTTPException(403, f"this operation needs the role {' or '.join(r.value for r in roles)}")
        return principal

    return Depends(guard)


BorrowerPrincipal = Annotated[Principal, require(Role.BORROWER)]
AdminPrincipal = Annotated[Principal, require(Role.ADMIN)]
ReaderPrincipal = Annotated[Principal, require(Role.BORROWER, Role.ADMIN, Role.AUDITOR)]
AuditorPrincipal = Annotated[Principal, require(Role.AUDITOR, Role.ADMIN)]


async def get_borrower_file(principal: BorrowerPrincipal, platform: PlatformDep) -> BorrowerFile:
    account = await asyncio.to_thread(platform.borrowers.load, str(principal.subject_id))
    if account is None:
        raise HTTPException(403, "this API key has no borrower account")
    return account


CurrentBorrower = Annotated[BorrowerFile, Depends(get_borrower_file)]
