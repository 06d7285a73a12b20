"""LocalSigner signs typed transactions through eth-account's TypedTransaction directly: the same raw bytes as
``Account.sign_transaction`` for every shape the lifecycle sends (and access-list ones), the sender recoverable."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from chain.signers import Role, devnet_account, devnet_signer

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
