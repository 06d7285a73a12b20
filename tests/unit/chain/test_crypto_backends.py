"""The signing and hashing backends the quote path relies on for its CPU budget (docs/performance.md)."""

from __future__ import annotations

import eth_hash.auto
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_hash.backends.pycryptodome import CryptodomeBackend
from eth_hash.backends.pysha3 import PySha3Backend
from eth_keys.backends import get_backend
from eth_keys.backends.coincurve import CoinCurveECCBackend
from eth_utils.crypto import keccak

from chain.keccak import use_fast_keccak
from chain.signers import DEVNET_ROLE_INDEX, Role, devnet_account

EMPTY_KECCAK = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")


def test_ecdsa_runs_on_coincurve_not_pure_python() -> None:
    # eth-keys falls back to a pure-Python ECDSA (milliseconds a signature) when coincurve does not import
    assert isinstance(get_backend(), CoinCurveECCBackend)
    account = devnet_account(DEVNET_ROLE_INDEX[Role.QUOTE_SIGNER])
    message = encode_defunct(text="creditmesh")
    signed = Account.sign_message(message, account.key)
    assert Account.recover_message(message, signature=signed.signature) == account.address


def test_use_fast_keccak_selects_pysha3_with_the_same_digests() -> None:
    use_fast_keccak()
    hasher = eth_hash.auto.keccak.hasher
    assert isinstance(getattr(hasher, "__self__", None), PySha3Backend)
    assert keccak(b"") == EMPTY_KECCAK
    for data in (b"", b"creditmesh", bytes(range(256)) * 5):
        assert keccak(data) == CryptodomeBackend().keccak256(data) == PySha3Backend().keccak256(data)
    use_fast_keccak()  # idempotent
    assert keccak(b"") == EMPTY_KECCAK
