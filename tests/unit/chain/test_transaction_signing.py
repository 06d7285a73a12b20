"""LocalSigner signs typed transactions through eth-account's TypedTransaction directly: the same raw bytes as
``Account.sign_transaction`` for every shape the lifecycle sends (and access-list ones), the sender recoverable."""

from __future__ import annotations

import random
from typing import Any

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address

from chain.signers import Role, _dynamic_fee_fields, devnet_account, devnet_signer

pytestmark = pytest.mark.unit

FEES = {"maxFeePerGas": 3_000_000_007, "maxPriorityFeePerGas": 1_000_000_003}
TO = "0x000000000000000000000000000000000000dEaD"

SHAPES: list[dict[str, Any]] = [
    {"type": 2, "chainId": 31337, "nonce": 0, "gas": 21_000, "value": 1, "data": b"", "to": TO, **FEES},
    {"type": 2, "chainId": 137, "nonce": 2**40, "gas": 90_000, "value": 0, "data": bytes(range(68)), "to": TO, **FEES},
    {
        "type": 2,
        "chainId": 31338,
        "nonce": 7,
        "gas": 3_000_000,
        "value": 0,
        "data": b"\x60\x80" * 300,
        **FEES,
    },  # deploy
    {"type": "0x2", "chainId": 1, "nonce": 3, "gas": 50_000, "value": 10**18, "data": "0xabcdef", "to": TO, **FEES},
    {
        "type": 1,
        "chainId": 31337,
        "nonce": 5,
        "gas": 60_000,
        "gasPrice": 2_000_000_000,
        "value": 0,
        "data": b"\x01",
        "to": TO,
        "accessList": [{"address": TO, "storageKeys": ["0x" + "00" * 31 + "01"]}],
    },
]


@pytest.mark.parametrize("transaction", SHAPES)
def test_typed_transactions_are_signed_byte_for_byte_as_eth_account_does(transaction: dict[str, Any]) -> None:
    signer = devnet_signer(Role.RELAYER)
    raw = signer.sign_transaction(dict(transaction))
    assert raw == bytes(Account.sign_transaction(dict(transaction), devnet_account(1).key).raw_transaction)
    assert Account.recover_transaction(raw) == signer.address


def test_a_legacy_transaction_still_goes_through_eth_account() -> None:
    legacy = {"chainId": 31337, "nonce": 1, "gas": 21_000, "gasPrice": 10**9, "value": 1, "data": b"", "to": TO}
    raw = devnet_signer(Role.RELAYER).sign_transaction(dict(legacy))
    assert raw == bytes(Account.sign_transaction(dict(legacy), devnet_account(1).key).raw_transaction)


def _random_transaction(rng: random.Random) -> dict[str, Any]:
    """A dynamic-fee transaction of the lifecycle's shape with random values (bounds included)."""

    def amount(bits: int) -> int:
        choices: list[int] = [0, 1, 2**bits - 1, rng.getrandbits(rng.randint(1, bits))]
        return rng.choice(choices)

    transaction: dict[str, Any] = {
        "type": 2,
        "chainId": rng.choice([1, 137, 31337, 31338, amount(64)]),
        "nonce": amount(64),
        "gas": amount(64),
        "value": amount(256),
        "data": rng.randbytes(rng.choice([0, 1, 4, 36, 68, 1_000])),
        "maxFeePerGas": amount(256),
        "maxPriorityFeePerGas": amount(256),
    }
    if rng.random() < 0.9:  # else a deployment
        transaction["to"] = to_checksum_address(rng.randbytes(20))
    return transaction


def test_random_lifecycle_transactions_are_signed_byte_for_byte_as_eth_account_does() -> None:
    """The lifecycle's shape skips eth-account's field validation: the same bytes as its validated path."""
    signer = devnet_signer(Role.RELAYER)
    key = devnet_account(1).key
    rng = random.Random(18)
    for _ in range(150):
        transaction = _random_transaction(rng)
        assert _dynamic_fee_fields(transaction) is not None  # the path without eth-account's validation
        raw = signer.sign_transaction(dict(transaction))
        assert raw == bytes(Account.sign_transaction(dict(transaction), key).raw_transaction), transaction


@pytest.mark.parametrize(
    "change",
    [
        {"to": TO.lower()},  # not checksummed: eth-account refuses it
        {"to": "0xdead"},
        {"value": -1},
        {"nonce": "0x5"},  # a hex string: eth-account's formatters take it
        {"data": "0xabcdef"},
        {"value": True},
        {"accessList": []},
    ],
)
def test_what_is_not_the_lifecycle_shape_goes_through_eth_account_validation(change: dict[str, Any]) -> None:
    """Values outside the shape the fast path takes are validated (or refused) exactly as eth-account does."""
    transaction = {**SHAPES[0], **change}
    try:
        expected: bytes | type[BaseException] = bytes(
            Account.sign_transaction(dict(transaction), devnet_account(1).key).raw_transaction
        )
    except Exception as err:  # eth-account refuses it: so must the signer, with the same error type
        expected = type(err)
    if isinstance(expected, bytes):
        assert devnet_signer(Role.RELAYER).sign_transaction(dict(transaction)) == expected
    else:
        with pytest.raises(expected):
            devnet_signer(Role.RELAYER).sign_transaction(dict(transaction))
