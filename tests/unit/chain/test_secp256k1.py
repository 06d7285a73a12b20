"""chain.secp256k1: the recoverable signatures made through ctypes with the GIL held are coincurve's, byte for byte."""

from __future__ import annotations

import random

import coincurve
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from chain.secp256k1 import RecoverableSigner
from chain.signers import LocalSigner


def test_the_signatures_are_coincurves_on_random_keys_and_digests() -> None:
    rng = random.Random(18)
    for _ in range(300):
        key = coincurve.PrivateKey(rng.randbytes(32))
        signer = RecoverableSigner(key)
        assert signer.holds_gil  # the extension module coincurve ships exports libsecp256k1's API
        digest = rng.randbytes(32)
        assert signer.sign(digest) == key.sign_recoverable(digest, hasher=None)


def test_a_digest_that_is_not_32_bytes_is_refused_as_coincurve_refuses_it() -> None:
    signer = RecoverableSigner(coincurve.PrivateKey(b"\x01" * 32))
    for wrong in (b"", b"\x02" * 31, b"\x02" * 33):
        with pytest.raises(ValueError, match="32 bytes"):
            signer.sign(wrong)


def test_a_local_signer_signs_typed_data_as_eth_account_does() -> None:
    account = Account.from_key(b"\x07" * 32)
    document = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
            "Note": [{"name": "amount", "type": "uint256"}, {"name": "memo", "type": "string"}],
        },
        "primaryType": "Note",
        "domain": {"name": "creditmesh", "chainId": 31337},
        "message": {"amount": 1_500_000_000, "memo": "gil"},
    }
    expected = Account.sign_message(encode_typed_data(full_message=document), account.key).signature
    assert LocalSigner(account).sign_typed_data(document) == bytes(expected)
