"""The permit domain listed for an EIP-5267 token (``aggregator.token_domains.eip5267_domain``): only the four-field
domain (name, version, chain id, verifying contract) a permit is signed under here, and only when it hashes to the
token's ``DOMAIN_SEPARATOR()``. Before, ``fields`` was ignored and the four-field domain built whatever the token
reported, so a token without a version or with a salt was listed under a domain it does not check permits under."""

from __future__ import annotations

import pytest
from eth_utils.address import to_checksum_address

from aggregator.token_domains import domain_separator, eip5267_domain
from contracts.typed_data import TokenDomain

pytestmark = pytest.mark.unit

TOKEN = to_checksum_address("0x" + "7c" * 20)
DOMAIN = TokenDomain("Wrapped Ether", "1", 31337, TOKEN)
SEPARATOR = domain_separator(DOMAIN)


def test_the_four_fields_hashing_to_the_tokens_separator_are_listed() -> None:
    assert eip5267_domain(b"\x0f", "Wrapped Ether", "1", 31337, TOKEN.lower(), SEPARATOR) == DOMAIN


@pytest.mark.parametrize(
    "fields",
    [b"\x0d", b"\x1f", b"\x0e", b"\x2f"],
    ids=["no-version", "salt", "no-name", "extensions"],
)
def test_a_domain_of_other_fields_is_not_listed(fields: bytes) -> None:
    assert eip5267_domain(fields, "Wrapped Ether", "1", 31337, TOKEN, SEPARATOR) is None


def test_a_domain_that_does_not_hash_to_the_tokens_separator_is_not_listed() -> None:
    assert eip5267_domain(b"\x0f", "Wrapped Ether", "2", 31337, TOKEN, SEPARATOR) is None
    assert eip5267_domain(b"\x0f", "Wrapped Ether", "1", 1, TOKEN, SEPARATOR) is None
