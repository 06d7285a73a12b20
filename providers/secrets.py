"""Lenders' HMAC secrets at rest: sealed with AES-256-GCM (compliance's ``seal``) under a key derived from the
platform's master key, bound to the provider id, so ``provider_registrations.config`` never holds a secret in
plaintext and a sealed secret moved to another provider does not open.

The master key is ``CREDITMESH_PII_MASTER_KEY`` until the key store (issue 20 part B) takes it over; the derived key
is HKDF-SHA256 with its own label, so it is never the key that wraps PII data keys."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from compliance.errors import PiiError
from compliance.pii import seal, unseal
from providers._exceptions import InvalidRegistration

SEALED_FIELD = "secret_sealed"
_LABEL = b"creditmesh/provider-secrets/v1"


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a provider secret key is 32 bytes")
        self._key = key

    @classmethod
    def from_master_key(cls, master_key: bytes) -> SecretBox:
        return cls(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(master_key))

    @staticmethod
    def _associated(provider_id: str) -> bytes:
        return f"provider/{provider_id}/secret".encode()

    def seal(self, subject: str, secret: str) -> bytes:
        """Any other secret of the platform's counterparties (a borrower's webhook secret), bound to ``subject``."""
        return seal(self._key, secret.encode(), f"{subject}/secret".encode())

    def open(self, subject: str, sealed: bytes) -> str:
        try:
            return unseal(self._key, sealed, f"{subject}/secret".encode()).decode()
        except (PiiError, ValueError) as err:
            raise InvalidRegistration(f"{subject}: its sealed secret does not open with this master key") from err

    def seal_config(self, provider_id: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` with its ``secret`` replaced by ``secret_sealed`` (base64 of nonce + ciphertext + tag)."""
        sealed = dict(config)
        secret = sealed.pop("secret", None)
        if isinstance(secret, str):
            ciphertext = seal(self._key, secret.encode(), self._associated(provider_id))
            sealed[SEALED_FIELD] = base64.b64encode(ciphertext).decode()
        elif secret is not None:
            sealed["secret"] = secret
        return sealed

    def open_config(self, provider_id: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` with its secret opened (a row written before sealing keeps its plaintext ``secret``)."""
        opened = dict(config)
        sealed = opened.pop(SEALED_FIELD, None)
        if sealed is None:
            return opened
        try:
            secret = unseal(self._key, base64.b64decode(sealed), self._associated(provider_id))
        except (PiiError, ValueError) as err:  # a wrong key or provider, or not base64
            raise InvalidRegistration(f"{provider_id}: its sealed secret does not open with this master key") from err
        opened["secret"] = secret.decode()
        return opened
