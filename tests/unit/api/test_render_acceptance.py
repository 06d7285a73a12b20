"""The acceptance document rendered from a stored quote's JSON (``api.render.acceptance_json``) is the one
``aggregator.offers.acceptance_document`` builds, with its bytes as 0x-hex and each uint256 a decimal string, and has
its digest, on random stored offers (hex in either case, addresses checksummed or lower case, amounts as ints or
decimal strings)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from eth_utils.address import to_checksum_address

from aggregator.offers import acceptance_document
from aggregator.quote_store import QuoteRecord
from api.render import acceptance_json
from contracts.typed_data import OFFER_FIELDS, TEXT_INTEGER_TYPES, digest

pytestmark = pytest.mark.unit


_TEXT_FIELDS = {f["name"] for f in OFFER_FIELDS if f["type"] in TEXT_INTEGER_TYPES}


def _as_json(value: object, in_offer: bool = False) -> object:
    """Every bytes value of the document (nested) as 0x-hex, each uint256 of the offer as a decimal string (the
    domain's chain id stays a number)."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {
            key: str(item) if in_offer and key in _TEXT_FIELDS else _as_json(item, key == "offer")
            for key, item in value.items()
        }
    return value


def _stored_value(rng: random.Random, kind: str) -> Any:
    if kind == "bytes32":
        text = rng.randbytes(32).hex()
        return "0x" + (text.upper() if rng.random() < 0.3 else text)
    if kind == "address":
        address = "0x" + rng.randbytes(20).hex()
        return to_checksum_address(address) if rng.random() < 0.7 else address
    amount = rng.randrange(2**64 if kind in {"uint32", "uint64"} else 2**256) % (2**32 if kind == "uint32" else 2**256)
    return str(amount) if rng.random() < 0.3 else amount


def _quote(rng: random.Random) -> QuoteRecord:
    offer = {f["name"]: _stored_value(rng, f["type"]) for f in OFFER_FIELDS}
    offer |= {"providerRef": "ref-1", "repayment": "single", "installments": 1, "schedule": None}
    now = datetime.now(UTC)
    return QuoteRecord(
        id="q",
        request_id="r",
        borrower_id="b",
        provider_id="p",
        kind="traditional",
        chain_name="ethereum-local",
        chain_id=rng.choice([1, 137, 31337]),
        contract="0x" + rng.randbytes(20).hex(),
        rank=1,
        offer=offer,
        offer_digest="0x",
        offer_signature="0x",
        attestation={},
        attestation_signature="0x",
        disclosure={},
        status="offered",
        expires_at=now,
        created_at=now,
    )


def test_the_acceptance_rendered_from_json_is_the_documents() -> None:
    rng = random.Random(4361)
    for _ in range(200):
        quote = _quote(rng)
        document = acceptance_document(quote)
        expected = {key: value if key == "types" else _as_json(value) for key, value in document.items()}
        rendered = acceptance_json(quote)
        assert rendered == expected
        assert digest(rendered) == digest(document)


def test_a_stored_offer_that_is_not_hex_is_refused_as_before() -> None:
    quote = _quote(random.Random(1))
    broken = replace(quote, offer=quote.offer | {"termsHash": "0xnothex"})
    with pytest.raises(ValueError, match="non-hexadecimal"):
        acceptance_document(broken)
    with pytest.raises(ValueError, match="non-hexadecimal"):
        acceptance_json(broken)
