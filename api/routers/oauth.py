"""OAuth2 client credentials (RFC 6749 §4.4): ``POST /v1/oauth/token`` exchanges an API key's client credentials for a
short-lived access token; ``GET /.well-known/jwks.json`` publishes the key that verifies it. Errors are problem
details that also carry OAuth2's ``error`` and ``error_description`` members."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.auth import KeyRejected, client_credentials
from api.deps import PlatformDep, get_tokens
from api.oauth import InvalidScope, TokenService
from api.problems import SERVICE_RETRY_AFTER_SECONDS, problem
from chain.errors import ConfigurationError

router = APIRouter(tags=["oauth"])

_FORM = "application/x-www-form-urlencoded"
_TOKEN_REQUEST = {
    "requestBody": {
        "required": True,
        "content": {
            _FORM: {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "additionalProperties": {"type": "string"},  # other parameters are ignored (RFC 6749 §3.2)
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "client_id": {"type": "string", "description": "the API key's id (or HTTP Basic auth)"},
                        "client_secret": {"type": "string", "description": "the API key (or HTTP Basic auth)"},
                        "scope": {"type": "string", "description": "space-separated; default: the key's role"},
                    },
                }
            }
        },
    }
}


class TokenOut(BaseModel):
    access_token: str
    token_type: str = Field(default="Bearer")
    expires_in: int = Field(description="seconds")
    scope: str


class JwksOut(BaseModel):
    keys: list[dict[str, Any]]


def _oauth_error(request: Request, status: int, error: str, description: str) -> JSONResponse:
    response = problem(
        status,
        f"oauth-{error.replace('_', '-')}",
        error,
        description,
        request.url.path,
        SERVICE_RETRY_AFTER_SECONDS if status == 503 else None,
        error=error,
        error_description=description,
    )
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="creditmesh"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _credentials(request: Request, form: dict[str, str]) -> tuple[str, str] | None:
    authorization = request.headers.get("authorization", "")
    if authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, ValueError):  # not base64; not ASCII (a str b64decode refuses); not UTF-8
            return None
        client_id, sep, secret = decoded.partition(":")
        return (client_id, secret) if sep else None
    if form.get("client_id") and form.get("client_secret"):
        return form["client_id"], form["client_secret"]
    return None


@router.post(
    "/v1/oauth/token",
    response_model=TokenOut,
    openapi_extra=_TOKEN_REQUEST,
    responses={200: {"headers": {"Cache-Control": {"schema": {"type": "string"}}}}},
)
async def oauth_token(
    request: Request, platform: PlatformDep, tokens: Annotated[TokenService | None, Depends(get_tokens)]
) -> Any:
    """Client credentials → an access token (a JWT, ``Authorization: Bearer …`` on every other operation) for the
    key's role; it expires after ``expires_in`` seconds and stops at once when its key is revoked."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != _FORM:
        return _oauth_error(request, 400, "invalid_request", f"send the parameters as {_FORM}")
    try:
        parsed = parse_qs((await request.body()).decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return _oauth_error(request, 400, "invalid_request", "the body is not UTF-8")
    if any(len(values) > 1 for values in parsed.values()):
        return _oauth_error(request, 400, "invalid_request", "a parameter is repeated")
    form = {name: values[0] for name, values in parsed.items()}
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(request, 400, "unsupported_grant_type", "only grant_type=client_credentials is supported")
    credentials = _credentials(request, form)
    if credentials is None:
        return _oauth_error(request, 401, "invalid_client", "client authentication is missing")
    try:
        client = await asyncio.to_thread(client_credentials, platform.database, *credentials)
    except KeyRejected as err:
        return _oauth_error(request, 401, "invalid_client", str(err))
    if tokens is None or tokens.key is None:
        return _oauth_error(request, 503, "temporarily_unavailable", "tokens are not configured on this platform")
    try:
        issued = tokens.issue(client, form.get("scope"))
    except InvalidScope as err:
        return _oauth_error(request, 400, "invalid_scope", str(err))
    except ConfigurationError as err:
        return _oauth_error(request, 503, "temporarily_unavailable", str(err))
    body = TokenOut(access_token=issued.token, expires_in=issued.expires_in, scope=issued.scope)
    return JSONResponse(body.model_dump(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@router.get("/.well-known/jwks.json", response_model=JwksOut)
async def jwks(tokens: Annotated[TokenService | None, Depends(get_tokens)]) -> JwksOut:
    """The public key(s) verifying access tokens, by ``kid`` (RFC 7517)."""
    return JwksOut(keys=[] if tokens is None else tokens.jwks()["keys"])
