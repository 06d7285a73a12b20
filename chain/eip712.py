"""EIP-712 digests with each domain's separator hashed once, on eth-account's own encoding.

``encode_typed_data(full_message=…)`` hashes the domain again for every document, and signing through
``Account.sign_message`` wraps the digest in an EIP-191 message again: together about 40% of a signature's CPU on
the quote path (nine signatures a credit request). Here the domain separator is eth-account's ``hash_domain``,
kept per domain; the message hash is eth-account's ``hash_eip712_message``; the digest is
``keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message))``, exactly what ``encode_typed_data`` signs (the tests
compare the two on every document type we sign).

``hashStruct(message)`` is eth-account's ``encode_data`` with what does not change per message kept per type layout:
the primary type, its type hash (``hash_type``: the type string rebuilt and hashed on every call otherwise) and
eth-abi's tuple encoder for the encoded field types (``eth_abi.encode`` builds and validates a new one per call).
Each field is still converted by eth-account's own ``encode_field`` (nested structs, arrays, strings and bytes
hashed as it hashes them) and the tuple encoded by eth-abi's own encoders from its default registry."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from eth_abi.encoding import TupleEncoder
from eth_abi.registry import registry

# eth-account is pinned (pyproject.toml); these are the functions its public encode_typed_data is made of
from eth_account._utils.encode_typed_data.encoding_and_hashing import (
    encode_field,
    get_primary_type,
    hash_domain,
    hash_type,
)
from eth_utils.crypto import keccak

DOMAIN_TYPE = "EIP712Domain"
EIP712_PREFIX = b"\x19\x01"


@lru_cache(maxsize=256)
def _separator(domain: tuple[tuple[str, Any], ...]) -> bytes:
    return hash_domain(dict(domain))


def domain_separator(domain: dict[str, Any]) -> bytes:
    """``hashStruct(EIP712Domain)`` of a domain (its fields as in the document), computed once per domain."""
    return _separator(tuple(domain.items()))


def typed_data_digest(document: dict[str, Any]) -> bytes:
    """The EIP-712 digest of a full ``eth_signTypedData_v4`` document (``types``, ``primaryType``, ``domain``,
    ``message``): what the signer signs and a contract recovers from."""
    types = {name: fields for name, fields in document["types"].items() if name != DOMAIN_TYPE}
    return keccak(EIP712_PREFIX + domain_separator(document["domain"]) + message_hash(types, document["message"]))


Layout = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


@lru_cache(maxsize=64)
def _struct(layout: Layout) -> tuple[str, bytes]:
    """The primary type of a set of types and its type hash, as eth-account derives them."""
    types = _types(layout)
    primary = get_primary_type(types)
    return primary, hash_type(primary, types)


def _types(layout: Layout) -> dict[str, list[dict[str, str]]]:
    return {name: [{"name": field, "type": kind} for field, kind in fields] for name, fields in layout}


@lru_cache(maxsize=64)
def _tuple_encoder(kinds: tuple[str, ...]) -> TupleEncoder:
    """What ``eth_abi.encode(kinds, …)`` builds for every call, built once: a tuple of the default registry's
    encoders (the same registry eth-account's ``encode_data`` encodes with)."""
    return TupleEncoder(encoders=[registry.get_encoder(kind) for kind in kinds])  # type: ignore[no-untyped-call]


def message_hash(types: dict[str, list[dict[str, str]]], message: dict[str, Any]) -> bytes:
    """``hashStruct`` of ``message`` under ``types`` (without ``EIP712Domain``): eth-account's
    ``hash_eip712_message``, with the primary type, its type hash and the tuple encoder kept per layout."""
    layout: Layout = tuple((name, tuple((f["name"], f["type"]) for f in fields)) for name, fields in types.items())
    primary, type_hash = _struct(layout)
    kinds: list[str] = ["bytes32"]
    values: list[bytes | int] = [type_hash]
    for field in types[primary]:
        kind, value = encode_field(types, field["name"], field["type"], message.get(field["name"]))
        kinds.append(kind)
        values.append(value)
    return keccak(_tuple_encoder(tuple(kinds))(values))
