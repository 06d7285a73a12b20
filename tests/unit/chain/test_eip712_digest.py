"""chain.eip712's digest (domain separator hashed once per domain) and LocalSigner's signatures over it are
exactly eth-account's own ``encode_typed_data`` + ``sign_message``, on every document type creditmesh signs."""

from __future__ import annotations

import random
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain.eip712 import domain_separator, typed_data_digest
from chain.signers import LocalSigner
from contracts.typed_data import (
    Acceptance,
    Domain,
    Offer,
    Permit,
    Repayment,
    RiskAttestation,
    TokenDomain,
    acceptance_typed_data,
    offer_typed_data,
    permit_typed_data,
    repayment_typed_data,
    risk_attestation_typed_data,
)

pytestmark = pytest.mark.unit

KEY = keccak(b"eip712 digest test signer")


def _address(rng: random.Random) -> Any:
    return to_checksum_address(rng.randbytes(20))


def _documents(rng: random.Random) -> list[dict[str, Any]]:
    domain = Domain(rng.choice([1, 137, 31337, 31338]), _address(rng))
    offer = Offer(
        providerId=rng.randbytes(32),
        pool=_address(rng),
        borrower=_address(rng),
        asset=_address(rng),
        principal=rng.randrange(2**256),
        rateBps=rng.randrange(2**32),
        term=rng.randrange(2**64),
        originationFee=rng.randrange(2**256),
        collateralAsset=_address(rng),
        collateralAmount=rng.randrange(2**256),
        chainId=domain.chain_id,
        termsHash=rng.randbytes(32),
        expiry=rng.randrange(2**64),
        nonce=rng.randrange(2**256),
    )
    attestation = RiskAttestation(
        _address(rng), rng.randrange(256), rng.randrange(2**16), rng.randrange(2**64), rng.randbytes(32), offer.nonce
    )
    token = TokenDomain("USD Coin", rng.choice(["1", "2"]), domain.chain_id, _address(rng))
    return [
        offer_typed_data(domain, offer),
        risk_attestation_typed_data(domain, attestation),
        acceptance_typed_data(domain, Acceptance(offer, offer.expiry)),
        repayment_typed_data(domain, Repayment(rng.randrange(2**64), rng.randrange(2**256), 3, 2**40)),
        permit_typed_data(token, Permit(_address(rng), _address(rng), rng.randrange(2**256), 0, 2**40)),
    ]


def test_digest_and_signature_match_eth_account_on_every_document_type() -> None:
    rng = random.Random(712)
    signer = LocalSigner.from_key(KEY)
    for _ in range(25):
        for document in _documents(rng):
            signed = Account.sign_message(encode_typed_data(full_message=document), KEY)
            assert typed_data_digest(document) == bytes(signed.message_hash)
            assert signer.sign_typed_data_with_digest(document) == (bytes(signed.message_hash), signed.signature)
            assert signer.sign_typed_data(document) == signed.signature
            recovered = Account.recover_message(encode_typed_data(full_message=document), signature=signed.signature)
            assert recovered == signer.address


def test_the_domain_separator_is_per_domain() -> None:
    first = Domain(31337, to_checksum_address(b"\x01" * 20)).as_dict()
    assert domain_separator(first) == domain_separator(dict(first))  # cached by value, not identity
    assert domain_separator(first) != domain_separator(first | {"chainId": 31338})
    assert domain_separator(first) != domain_separator(first | {"verifyingContract": to_checksum_address(b"\x02" * 20)})
