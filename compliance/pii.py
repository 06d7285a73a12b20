"""PII protection: identity fields encrypted at rest with AES-256-GCM under a per-subject data key, masked in logs at
the call site (``Masked``; ``PiiMaskingFilter`` masks shaped values such as e-mails, SSNs and dates as a safety net),
and erased by destroying the subject's key (crypto-shredding), refused while a retention period applies.

The key store is an interface a KMS fits (create, fetch, destroy a subject's data key), and it lives outside the
database that holds the ciphertext: ``store.keystore.SqlKeyStore`` (a separate SQLite file locally, keys wrapped under
a master key), ``compliance.kms.KmsKeyStore`` (a KMS key per subject) in production; ``InMemoryKeyProvider`` for
tests.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from compliance.errors import ErasureRefused, PiiError, SubjectKeyMissing

NONCE_BYTES = 12

# Retention periods a record may be under (configurable; these are the usual minimums).
REGULATION_B = timedelta(days=761)  # 25 months after notice of action on an application, 12 CFR 1002.12(b)
BSA_FIVE_YEARS = timedelta(days=5 * 365 + 1)  # 31 CFR 1010.430(d)


_SUBJECT = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def subject_id_checked(subject_id: str) -> str:
    """A subject id usable as a key name in every key store (a KMS alias included)."""
    if not _SUBJECT.match(subject_id):
        raise PiiError(f"a subject id is 1-64 letters, digits, '.', '_', ':' or '-', not {subject_id!r}")
    return subject_id


class KeyProvider(Protocol):
    """The key store: subject data keys kept apart from the ciphertext they open."""

    def create_key(self, subject_id: str) -> None:
        """Create the subject's data key if it does not exist yet."""
        ...

    def data_key(self, subject_id: str) -> bytes:
        """The subject's 32-byte data key. Raises SubjectKeyMissing when it was never created or was destroyed."""
        ...

    def destroy_key(self, subject_id: str) -> None: ...


class InMemoryKeyProvider:
    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}

    def create_key(self, subject_id: str) -> None:
        self._keys.setdefault(subject_id, AESGCM.generate_key(bit_length=256))

    def data_key(self, subject_id: str) -> bytes:
        try:
            return self._keys[subject_id]
        except KeyError as err:
            raise SubjectKeyMissing(f"no data key for subject {subject_id}") from err

    def destroy_key(self, subject_id: str) -> None:
        self._keys.pop(subject_id, None)


def seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def unseal(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)
    except InvalidTag as err:
        raise PiiError("ciphertext does not authenticate (wrong key, subject or field)") from err


class PiiVault:
    """Encrypts one field of one subject; the subject and field names are bound in as associated data, so a
    ciphertext moved to another subject or field does not decrypt."""

    def __init__(self, keys: KeyProvider) -> None:
        self.keys = keys

    def encrypt(self, subject_id: str, field: str, value: str, *, create_key: bool = False) -> bytes:
        """Sealed under the subject's data key: one key-store read when the key exists (every screening of a known
        borrower seals its name). A missing key is created only with ``create_key`` — a new identity submitted —
        and raises SubjectKeyMissing otherwise: a value sealed after an erasure (a screening begun before it) must
        not get a fresh key that would open it again.

        Raises:
            SubjectKeyMissing: no key for the subject (never created, or erased) and ``create_key`` is not set.
        """
        try:
            key = self.keys.data_key(subject_id)
        except SubjectKeyMissing:
            if not create_key:
                raise
            self.keys.create_key(subject_id)
            key = self.keys.data_key(subject_id)
        return seal(key, value.encode(), f"{subject_id}/{field}".encode())

    def decrypt(self, subject_id: str, field: str, sealed: bytes) -> str:
        return unseal(self.keys.data_key(subject_id), sealed, f"{subject_id}/{field}".encode()).decode()


@dataclass(frozen=True)
class RetentionHold:
    """A record of the subject that must be kept: why, and from when the period runs (``since`` None: the record is
    still open — a loan not closed — and its period has not begun)."""

    reason: str
    since: datetime | None
    period: timedelta

    @property
    def until(self) -> datetime | None:
        return None if self.since is None else self.since + self.period


def erase_subject(keys: KeyProvider, subject_id: str, holds: Iterable[RetentionHold], now: datetime) -> None:
    """Crypto-shred the subject's PII by destroying its data key.

    Raises:
        ErasureRefused: a record is still open (``retain_until`` None), or a retention period still runs (the
            longest one, and when it ends).
    """
    holds = list(holds)
    still_open = next((h for h in holds if h.since is None), None)
    if still_open is not None:
        raise ErasureRefused(subject_id, None, still_open.reason)
    running = [(until, h) for h in holds if (until := h.until) is not None and until > now]
    if running:
        until, latest = max(running, key=lambda held: held[0])
        raise ErasureRefused(subject_id, until, latest.reason)
    keys.destroy_key(subject_id)


def mask(value: str, keep: int = 1) -> str:
    """``Jane Doe`` -> ``J*** D**``: the first letter of each word kept."""
    return " ".join(w[:keep] + "*" * max(len(w) - keep, 0) for w in value.split())


@dataclass(frozen=True, slots=True)
class Masked:
    """A personal value handed to a log call: it renders masked wherever it is formatted (``%s``, ``str``, ``repr``,
    a structured field), so masking happens at the call site and needs no registry of names::

        log.info("KYC of %s (borrower %s)", Masked(full_name), borrower_id)
    """

    value: str

    def __str__(self) -> str:
        return mask(self.value)

    def __repr__(self) -> str:
        return repr(mask(self.value))


_PATTERNS = (
    (re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b"), r"\1***@\2"),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), "***-**-****"),  # US SSN
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "****-**-**"),  # dates (of birth)
)


def scrub(text: str) -> str:
    """Mask what has a recognizable shape (e-mail addresses, SSNs, dates): a fixed set of patterns, whatever was
    submitted before. Names have no shape: they are masked at the call site (``Masked``)."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class PiiMaskingFilter(logging.Filter):
    """A safety net on the handler: ``scrub`` over every message. Holds no state, so nothing a borrower submits can
    grow it or change what it masks."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        return True
