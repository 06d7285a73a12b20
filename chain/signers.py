"""Signers, one key per role (DESIGN.md): relayer, quote signer, risk signer, operator, guardian, keeper, audit
anchor, and the deployer.

``Signer`` is the interface a KMS or HSM signer fits; ``LocalSigner`` holds an eth-account key in memory and never
shows it (no repr, no log, no API)."""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import Any, Protocol

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress

from chain.devnet import DEVNET_MNEMONIC
from contracts import typed_data


class Role(StrEnum):
    DEPLOYER = "deployer"
    RELAYER = "relayer"
    QUOTE_SIGNER = "quote_signer"
    RISK_SIGNER = "risk_signer"
    OPERATOR = "operator"
    GUARDIAN = "guardian"
    KEEPER = "keeper"
    AUDIT_ANCHOR = "audit_anchor"


# Devnet account index per role, from anvil's public development mnemonic (DESIGN.md's account map; the devnets
# start with ``chain.devnet.DEVNET_ACCOUNTS`` = 20 accounts). Indexes 6-9 are devnet borrowers and lenders, 12-14 the
# owners of the devnet Safe that proposes to the timelock (2 of 3).
DEVNET_ROLE_INDEX: dict[Role, int] = {
    Role.DEPLOYER: 0,
    Role.RELAYER: 1,
    Role.QUOTE_SIGNER: 2,
    Role.RISK_SIGNER: 3,
    Role.OPERATOR: 4,
    Role.GUARDIAN: 5,
    Role.KEEPER: 10,
    Role.AUDIT_ANCHOR: 11,
}
DEVNET_BORROWER_INDEXES = (6, 7, 8, 9)
DEVNET_SAFE_OWNER_INDEXES = (12, 13, 14)
DEVNET_SAFE_THRESHOLD = 2


class Signer(Protocol):
    """Signs transactions and EIP-712 typed data for one address."""

    @property
    def address(self) -> ChecksumAddress: ...

    def sign_transaction(self, transaction: dict[str, Any]) -> bytes:
        """The raw signed transaction, ready for ``eth_sendRawTransaction``."""
        ...

    def sign_typed_data(self, document: dict[str, Any]) -> bytes:
        """A 65-byte signature over a full EIP-712 document."""
        ...


class LocalSigner:
    """An in-memory eth-account key (coincurve makes signing fast)."""

    __slots__ = ("_account",)

    def __init__(self, account: LocalAccount) -> None:
        self._account = account

    @classmethod
    def from_key(cls, private_key: str | bytes) -> LocalSigner:
        return cls(Account.from_key(private_key))

    @property
    def address(self) -> ChecksumAddress:
        return self._account.address

    def sign_transaction(self, transaction: dict[str, Any]) -> bytes:
        return bytes(self._account.sign_transaction(transaction).raw_transaction)

    def sign_typed_data(self, document: dict[str, Any]) -> bytes:
        return typed_data.sign(document, self._account.key)

    def __repr__(self) -> str:
        return f"LocalSigner({self.address})"


@cache
def devnet_account(index: int) -> LocalAccount:
    """Account ``index`` of anvil's public development mnemonic."""
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(DEVNET_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account


def devnet_signer(role: Role) -> LocalSigner:
    return LocalSigner(devnet_account(DEVNET_ROLE_INDEX[role]))
