"""OAuth2 client credentials beside API keys: a holder of an API key (``client_id`` = the key's id, ``client_secret``
= the key) gets a short-lived JWT access token (PyJWT; ES256 or EdDSA from ``CREDITMESH_JWT_SIGNING_KEY``, the key id
in the header, the public key at ``/.well-known/jwks.json``) carrying the key's role as its scope. A token is checked
like its key on every request: it stops when its key is revoked or expires, and never outlives the key's expiry."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from api.auth import ApiKeyInfo, KeyRejected, Role
from api.settings import Settings
from chain.errors import ConfigurationError

#: the scopes a token of each role carries (and may ask for): one per role, checked by ``api.deps.require``
ROLE_SCOPES: dict[Role, frozenset[str]] = {role: frozenset({role.value}) for role in Role}
#: a published local-only seed: local runs sign tokens with it; it is never used outside ``environment = local``
_LOCAL_SEED = hashlib.sha256(b"creditmesh local OAuth2 signing key: public, for local runs only").digest()


class InvalidScope(Exception):
    """The client asked for a scope its role does not have (OAuth2 ``invalid_scope``)."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    private_key: EllipticCurvePrivateKey | Ed25519PrivateKey
    algorithm: str  # ES256 or EdDSA
    kid: str  # the RFC 7638 thumbprint of the public key

    @classmethod
    def of(cls, private_key: EllipticCurvePrivateKey | Ed25519PrivateKey) -> SigningKey:
        public = _public_jwk(private_key)
        required = {name: public[name] for name in sorted(public) if name in {"crv", "kty", "x", "y"}}
        thumbprint = hashlib.sha256(json.dumps(required, separators=(",", ":")).encode()).digest()
        algorithm = "EdDSA" if isinstance(private_key, Ed25519PrivateKey) else "ES256"
        return cls(private_key, algorithm, base64.urlsafe_b64encode(thumbprint).decode().rstrip("="))

    @classmethod
    def from_pem(cls, pem: str) -> SigningKey:
        try:
            key = load_pem_private_key(pem.encode(), password=None)
        except (ValueError, TypeError) as err:
            raise ConfigurationError(f"CREDITMESH_JWT_SIGNING_KEY is not a PEM private key: {err}") from err
        if isinstance(key, EllipticCurvePrivateKey) and isinstance(key.curve, SECP256R1):
            return cls.of(key)
        if isinstance(key, Ed25519PrivateKey):
            return cls.of(key)
        raise ConfigurationError("CREDITMESH_JWT_SIGNING_KEY must be an EC P-256 (ES256) or Ed25519 (EdDSA) key")

    def jwk(self) -> dict[str, Any]:
        return _public_jwk(self.private_key) | {"kid": self.kid, "alg": self.algorithm, "use": "sig"}


def _public_jwk(private_key: EllipticCurvePrivateKey | Ed25519PrivateKey) -> dict[str, Any]:
    if isinstance(private_key, Ed25519PrivateKey):
        return dict(OKPAlgorithm.to_jwk(private_key.public_key(), as_dict=True))
    return dict(ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True))


def local_signing_key() -> SigningKey:
    return SigningKey.of(Ed25519PrivateKey.from_private_bytes(_LOCAL_SEED))


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_in: int
    scope: str


class TokenService:
    """Issues and verifies access tokens; ``key`` None: tokens are not configured (none issued, none accepted)."""

    def __init__(self, key: SigningKey | None, issuer: str, audience: str, ttl: timedelta) -> None:
        self.key, self.issuer, self.audience, self.ttl = key, issuer, audience, ttl

    def issue(self, client: ApiKeyInfo, requested: str | None, now: datetime | None = None) -> AccessToken:
        if self.key is None:
            raise ConfigurationError("OAuth2 tokens are not configured: set CREDITMESH_JWT_SIGNING_KEY")
        allowed = ROLE_SCOPES[client.role]
        scopes = allowed if not requested else frozenset(requested.split())
        if not scopes <= allowed:
            raise InvalidScope(f"a {client.role.value} key may ask only for {' '.join(sorted(allowed))}")
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        expires = now + self.ttl
        if client.expires_at is not None:
            expires = min(expires, client.expires_at)  # a token never outlives its key
        scope = " ".join(sorted(scopes))
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": client.key_id,
            "iat": now,
            "nbf": now,
            "exp": expires,
            "jti": secrets.token_urlsafe(12),
            "scope": scope,
            "role": client.role.value,
        }
        token = jwt.encode(claims, self.key.private_key, algorithm=self.key.algorithm, headers={"kid": self.key.kid})
        return AccessToken(token, max(0, int((expires - now).total_seconds())), scope)

    def verify(self, token: str) -> tuple[str, Role]:
        """The key id and role a token was issued to; :class:`KeyRejected` for any token this service did not issue
        for this audience, or that has expired. The caller still checks that the key is live."""
        if self.key is None:
            raise KeyRejected("bearer tokens are not configured on this platform")
        try:
            header = jwt.get_unverified_header(token)
            if header.get("kid") != self.key.kid:
                raise KeyRejected("the token was not signed with this platform's key")
            claims = jwt.decode(
                token,
                self.key.private_key.public_key(),
                algorithms=[self.key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
            role = Role(claims["role"])
            if not set(str(claims.get("scope", "")).split()) <= ROLE_SCOPES[role]:
                raise KeyRejected("the token's scope is not its role's")
        except jwt.ExpiredSignatureError as err:
            raise KeyRejected("the access token has expired") from err
        except jwt.InvalidAudienceError as err:
            raise KeyRejected("the access token is for another audience") from err
        except (jwt.PyJWTError, KeyError, ValueError) as err:
            raise KeyRejected(f"invalid access token: {err}") from err
        return str(claims["sub"]), role

    def jwks(self) -> dict[str, Any]:
        return {"keys": [] if self.key is None else [self.key.jwk()]}


def tokens_from_settings(settings: Settings) -> TokenService:
    if settings.jwt_signing_key:
        key: SigningKey | None = SigningKey.from_pem(settings.jwt_signing_key)
    else:
        key = local_signing_key() if settings.environment == "local" else None
    return TokenService(key, settings.jwt_issuer, settings.jwt_audience, timedelta(seconds=settings.jwt_ttl_seconds))
