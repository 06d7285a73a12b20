"""Named FastAPI dependencies: the platform, the caller's principal, role guards."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from aggregator.borrowers import BorrowerFile
from api.auth import KeyRejected, Principal, Role, authenticate
from api.bootstrap import Platform


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


# the OpenAPI document's security scheme; auto_error off so that a missing key is our 401 problem, not FastAPI's 403
api_key_header = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKey", auto_error=False, description="an API key issued by an admin"
)


async def get_principal(platform: PlatformDep, x_api_key: Annotated[str | None, Depends(api_key_header)]) -> Principal:
    if not x_api_key:
        raise HTTPException(401, "missing X-API-Key header", headers={"WWW-Authenticate": "ApiKey"})
    try:
        return await asyncio.to_thread(authenticate, platform.database, x_api_key)
    except KeyRejected as err:  # unknown, revoked or expired
        raise HTTPException(401, str(err), headers={"WWW-Authenticate": "ApiKey"}) from err


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
