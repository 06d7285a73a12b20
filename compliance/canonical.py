"""The project's one canonical form: RFC 8785 (JCS) JSON, hashed with keccak256 — or, for inputs that cover personal
data, HMAC-SHA256 under a platform key (``keyed_inputs_hash``), so that a dictionary search cannot reverse them once
the data itself is erased. Record hashes, ``decisionHash`` and ``termsHash`` stay keccak256.

Values are reduced to JSON-safe primitives first: ``Decimal`` becomes its plain string (never a float), dates and
datetimes become ISO 8601 strings (UTC with ``Z`` for datetimes), tuples become lists, enums their value.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import rfc8785
from eth_hash.auto import keccak

from compliance.errors import ComplianceInputError

JsonValue = None | bool | int | str | list["JsonValue"] | dict[str, "JsonValue"]

# RFC 8785 serializes numbers as IEEE doubles; integers past 2**53 would lose digits, so they must be strings.
_MAX_SAFE_INT = 2**53 - 1


def to_json_value(value: Any) -> JsonValue:
    """Reduce ``value`` to what RFC 8785 encodes exactly. Floats are refused: they are never money here."""
    # The plain types first, by exact type: every decision record and audit entry of a credit request passes through
    # here, and the ABC checks below (Mapping, Sequence) cost far more than the conversion. Same results.
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value  # type: ignore[no-any-return]
    if kind is int and -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
        return value  # type: ignore[no-any-return]
    if kind is dict and all(type(key) is str for key in value):
        return {key: to_json_value(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [to_json_value(item) for item in value]
    return _to_json_value(value)


def _to_json_value(value: Any) -> JsonValue:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, enum.Enum):
        return to_json_value(value.value)
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise ComplianceInputError(f"integer {value} is too large for canonical JSON; pass it as a string")
        return value
    if isinstance(value, float):
        raise ComplianceInputError("floats are not allowed in canonical JSON; use Decimal or integer base units")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ComplianceInputError(f"non-finite decimal {value}")
        return format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ComplianceInputError("naive datetime in canonical JSON; pass an aware UTC datetime")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Mapping):
        out: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ComplianceInputError(f"canonical JSON keys must be strings, got {key!r}")
            out[key] = to_json_value(item)
        return out
    if isinstance(value, Sequence | frozenset | set):
        items = [to_json_value(item) for item in value]
        if isinstance(value, frozenset | set):
            items.sort(key=lambda item: rfc8785.dumps(item))
        return items
    raise ComplianceInputError(f"cannot put {type(value).__name__} into canonical JSON")


#: the standard library's C encoder with RFC 8785's layout: keys sorted, no whitespace, no NaN (``to_json_value``
#: leaves no floats anyway); control characters, quotes and backslashes escaped exactly as RFC 8785 escapes them
_ENCODE = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
).encode


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes of ``value`` (after ``to_json_value``).

    ``to_json_value`` leaves only strings, safe integers, booleans, None, lists and dicts with string keys, on which
    the standard library's encoder writes RFC 8785's bytes as long as the text is ASCII: integers as their digits,
    strings with the same escapes, keys sorted by code point, which for ASCII is RFC 8785's UTF-16 order. Anything
    with a non-ASCII character goes through ``rfc8785`` itself (its key order differs from code point order beyond
    the Basic Multilingual Plane). The pure-Python encoder cost ~6x the C one on every decision record, audit entry
    and disclosure of a credit request; the unit tests compare the two on random documents."""
    json_value = to_json_value(value)
    text = _ENCODE(json_value)
    if text.isascii():
        return text.encode("ascii")
    return bytes(rfc8785.dumps(json_value))


def keccak256(data: bytes) -> bytes:
    """keccak256 of ``data`` on eth-hash, the hasher eth-utils' ``keccak`` wraps (without its argument checks, which
    cost more than hashing a decision record)."""
    return keccak(data)


def inputs_hash(value: Any) -> bytes:
    """keccak256 of the canonical JSON of ``value``: the project's inputs hash and terms hash."""
    return keccak256(canonical_json(value))


def keyed_inputs_hash(key: bytes, value: Any) -> bytes:
    """HMAC-SHA256 under the platform's inputs-hash key of the canonical JSON of ``value``: the inputs hash of a
    decision whose inputs cover personal data."""
    if len(key) < 32:
        raise ComplianceInputError("the inputs-hash key must be at least 32 bytes")
    return hmac.new(key, canonical_json(value), hashlib.sha256).digest()
