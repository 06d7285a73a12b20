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
hashed as it hashes them) and encoded by eth-abi's own encoder of the converted type from its default registry.
After ``encode_field`` every field is a static 32-byte ABI word (``bytes32`` for structs, arrays, strings and
bytes), so the tuple's encoding is the words one after another, which is what eth-abi's tuple encoder writes for
static members; going through it validated every value twice. The word of an atomic field (neither a struct nor an
array) depends only on its type and value, and a credit request signs the same borrower, assets, amounts and chain
ids into every offer, request after request: those words are kept, by type and by the value with its Python type
(so ``True`` is never taken for ``1``), a bounded number of them. Invalid values raise as before and are not kept."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from eth_abi.registry import registry

# eth-account is pinned (pyproject.toml); these are the functions its public encode_typed_data is made of
from eth_account._utils.encode_typed_data.encoding_and_hashing import (
    encode_field,
    get_primary_type,
    hash_domain,
    hash_type,
)
from eth_account._utils.encode_typed_data.helpers import is_array_type
from eth_hash.auto import keccak  # the hasher eth-utils' keccak wraps, without its argument checks

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
def _struct(layout: Layout) -> tuple[str, bytes, tuple[tuple[str, str, bool], ...]]:
    """The primary type of a set of types, its type hash as eth-account derives them, and its fields: name, type and
    whether the field is atomic (its word depends on its value alone)."""
    types = _types(layout)
    primary = get_primary_type(types)
    fields = tuple(
        (field["name"], field["type"], field["type"] not in types and not is_array_type(field["type"]))
        for field in types[primary]
    )
    return primary, hash_type(primary, types), fields


def _types(layout: Layout) -> dict[str, list[dict[str, str]]]:
    return {name: [{"name": field, "type": kind} for field, kind in fields] for name, fields in layout}


@lru_cache(maxsize=64)
def _static_encoder(kind: str) -> Any:
    """eth-abi's encoder of ``kind`` from the default registry (the one eth-account's ``encode_data`` encodes
    with); ``encode_field`` converts every field to a static type."""
    encoder = registry.get_encoder(kind)
    if getattr(encoder, "is_dynamic", False):
        raise ValueError(f"{kind} is not a static ABI type")
    return encoder


def _word(types: dict[str, list[dict[str, str]]], name: str, kind: str, value: Any) -> bytes:
    """One field's 32-byte word: eth-account's ``encode_field``, then eth-abi's encoder of the converted type."""
    encoded_kind, encoded = encode_field(types, name, kind, value)
    word: bytes = _static_encoder(encoded_kind)(encoded)
    return word


#: atomic fields' words by (type, Python type of the value, value); cleared when full
_WORDS: dict[tuple[str, type, Any], bytes] = {}
_WORDS_KEPT = 4096


def _atomic_word(types: dict[str, list[dict[str, str]]], name: str, kind: str, value: Any) -> bytes:
    try:
        key = (kind, type(value), value)
        word = _WORDS.get(key)
    except TypeError:  # an unhashable value (encode_field refuses it for an atomic type, or converts it)
        return _word(types, name, kind, value)
    if word is None:
        word = _word(types, name, kind, value)
        if len(_WORDS) >= _WORDS_KEPT:
            _WORDS.clear()
        _WORDS[key] = word
    return word


def message_hash(types: dict[str, list[dict[str, str]]], message: dict[str, Any]) -> bytes:
    """``hashStruct`` of ``message`` under ``types`` (without ``EIP712Domain``): eth-account's
    ``hash_eip712_message``, with the primary type, its type hash and field list kept per layout and atomic fields'
    words kept per value."""
    layout: Layout = tuple((name, tuple((f["name"], f["type"]) for f in fields)) for name, fields in types.items())
    _primary, type_hash, fields = _struct(layout)
    words = [type_hash]
    for name, kind, atomic in fields:
        value = message.get(name)
        words.append(_atomic_word(types, name, kind, value) if atomic else _word(types, name, kind, value))
    return keccak(b"".join(words))
