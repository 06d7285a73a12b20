"""chain.eip712's digest (domain separator hashed once per domain) and LocalSigner's signatures over it are
exactly eth-account's own ``encode_typed_data`` + ``sign_message``, on every document type creditmesh signs."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from eth_abi.exceptions import EncodingTypeError
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


_ATOMIC = ["uint256", "uint8", "uint64", "int256", "int32", "address", "bool", "bytes32", "bytes4", "string", "bytes"]


def _value(rng: random.Random, kind: str) -> Any:
    if kind.endswith("[]"):
        return [_value(rng, kind[:-2]) for _ in range(rng.randrange(3))]
    if kind.startswith("uint"):
        return rng.randrange(2 ** int(kind[4:]))
    if kind.startswith("int"):
        bits = int(kind[3:])
        return rng.randrange(-(2 ** (bits - 1)), 2 ** (bits - 1))
    if kind == "address":
        return _address(rng)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "string":
        return rng.choice(["", "creditmesh", "prêt à 4,9 %", "x" * 70])
    if kind == "bytes":
        return rng.randbytes(rng.randrange(70))
    return rng.randbytes(int(kind[5:]))  # bytesN


def _random_types(rng: random.Random) -> dict[str, list[dict[str, str]]]:
    """A primary struct of random atomic, dynamic and array fields, half the time with a nested struct."""
    fields = [{"name": f"f{n}", "type": rng.choice([*_ATOMIC, "uint256[]", "address[]"])} for n in range(1, 12)]
    types = {"EIP712Domain": [{"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}]}
    if rng.random() < 0.5:
        fields.insert(rng.randrange(len(fields)), {"name": "nested", "type": "Inner"})
        types["Inner"] = [{"name": f"i{n}", "type": rng.choice(_ATOMIC)} for n in range(rng.randrange(1, 4))]
    types["Outer"] = fields
    return types


def _random_document(rng: random.Random, types: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
    def struct(name: str) -> dict[str, Any]:
        return {f["name"]: struct(f["type"]) if f["type"] in types else _value(rng, f["type"]) for f in types[name]}

    domain = {"chainId": rng.choice([1, 31337]), "verifyingContract": _address(rng)}
    return {"types": types, "primaryType": "Outer", "domain": domain, "message": struct("Outer")}


def test_the_kept_layout_digest_is_eth_accounts_on_random_documents() -> None:
    """typed_data_digest keeps the type hash and eth-abi's tuple encoder per layout: eth-account's own digest on
    documents of random shape, each layout signed several times (the kept parts reused)."""
    rng = random.Random(1901)
    layouts = [_random_types(rng) for _ in range(12)]
    for _ in range(5):
        for types in layouts:
            document = _random_document(rng, types)
            signable = encode_typed_data(full_message=document)
            assert typed_data_digest(document) == keccak(b"\x19" + signable.version + signable.header + signable.body)


def test_kept_words_give_eth_accounts_digest_and_keep_its_refusals() -> None:
    """Atomic fields' words are kept by type and value: documents that share values (as a request's offers share
    the borrower, assets and amounts) still digest as eth-account digests them, and a value eth-abi refuses (a bool
    for a uint) is refused even after the equal int was kept."""
    rng = random.Random(2612)
    domain = Domain(31337, _address(rng))
    shared = {"borrower": _address(rng), "asset": _address(rng), "principal": 1_500 * 10**6}
    for nonce in range(40):
        offer = Offer(
            providerId=keccak(text=rng.choice(["bank", "fintech", "pool"])),
            pool=_address(rng) if nonce % 2 else to_checksum_address(b"\x00" * 20),
            borrower=shared["borrower"],
            asset=shared["asset"],
            principal=shared["principal"],
            rateBps=rng.choice([1, 900, 1_100]),
            term=30 * 86_400,
            originationFee=1,
            collateralAsset=shared["asset"],
            collateralAmount=1,
            chainId=31337,
            termsHash=rng.randbytes(32),
            expiry=rng.randrange(2**64),
            nonce=nonce,
        )
        document = offer_typed_data(domain, offer)
        expected = bytes(Account.sign_message(encode_typed_data(full_message=document), KEY).message_hash)
        assert typed_data_digest(document) == expected
        assert typed_data_digest(document) == expected  # now from kept words
    refused = offer_typed_data(domain, replace(offer, rateBps=True))  # a bool where eth-abi takes an int
    with pytest.raises(EncodingTypeError):
        encode_typed_data(full_message=refused)
    with pytest.raises(EncodingTypeError):
        typed_data_digest(refused)
