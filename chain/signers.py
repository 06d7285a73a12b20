"""Signers, one key per role (DESIGN.md): relayer, quote signer, risk signer, operator, guardian, keeper, audit
anchor, and the deployer; and ``production_guard``, the one check that refuses every devnet secret when
``CREDITMESH_ENVIRONMENT=production``.

``Signer`` is the interface a KMS or HSM signer fits; ``LocalSigner`` holds an eth-account key in memory and never
shows it (no repr, no log, no API)."""

from __future__ import annotations

import ipaddress
import math
import os
import socket
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum, StrEnum
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import coincurve
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions.dynamic_fee_transaction import DynamicFeeTransaction
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_keys.datatypes import PrivateKey
from eth_typing import ChecksumAddress
from eth_utils.address import is_checksum_address, to_canonical_address

from chain.devnet import DEVNET_ACCOUNTS, DEVNET_MNEMONIC
from chain.eip712 import typed_data_digest
from chain.errors import ConfigurationError
from chain.secp256k1 import RecoverableSigner


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

    def sign_typed_data_with_digest(self, document: dict[str, Any]) -> tuple[bytes, bytes]:
        """The document's EIP-712 digest and a 65-byte signature over it (the document encoded once)."""
        ...


# EIP-2930 access-list and EIP-1559 dynamic-fee transactions (blob and set-code ones go through Account as a whole)
_TYPED = (1, 2, "0x1", "0x2")

# The dynamic-fee transaction's fields the lifecycle fills: int amounts, bytes calldata, a checksummed ``to`` (absent
# for a deployment). eth-account's validation and formatters leave such values as they are except ``to`` (to bytes).
_DYNAMIC_FEE_INTS = ("chainId", "nonce", "gas", "maxFeePerGas", "maxPriorityFeePerGas")
_DYNAMIC_FEE_KEYS = frozenset({"type", *_DYNAMIC_FEE_INTS, "value", "data", "to"})


@lru_cache(maxsize=4096)
def _checksummed_address(address: str) -> bytes | None:
    """``address``'s 20 bytes when it is checksummed as eth-account's validation requires, else None (checked once
    per address: the lifecycle sends to a few contracts, and a checksum is a Keccak-256 of the address)."""
    if not is_checksum_address(address):
        return None
    return to_canonical_address(address)


def _dynamic_fee_fields(transaction: dict[str, Any]) -> dict[str, Any] | None:
    """The fields eth-account's ``DynamicFeeTransaction.from_dict`` would make of ``transaction`` when it has the
    lifecycle's shape and plain values (type 2; non-negative ints; bytes data; a checksummed ``to`` or none), else
    None (anything else goes through eth-account's validation)."""
    if (
        transaction.get("type") != 2
        or type(transaction["type"]) is not int
        or not transaction.keys() <= _DYNAMIC_FEE_KEYS
    ):
        return None
    value = transaction.get("value", 0)
    data = transaction.get("data", b"")
    if type(value) is not int or value < 0 or type(data) is not bytes:
        return None
    fields: dict[str, Any] = {"accessList": [], "value": value, "data": data}
    for name in _DYNAMIC_FEE_INTS:
        amount = transaction.get(name)
        if type(amount) is not int or amount < 0:
            return None
        fields[name] = amount
    to = transaction.get("to")
    if to is None:
        fields["to"] = b""
    else:
        if type(to) is not str:
            return None
        address = _checksummed_address(to)
        if address is None:
            return None
        fields["to"] = address
    return fields


class LocalSigner:
    """An in-memory eth-account key. The parsed key object is kept: eth-account
    otherwise parses the key bytes and derives the public key again for every signature. Signatures are made with
    the GIL held (``chain.secp256k1``): the quote path signs on the API's event loop."""

    __slots__ = ("_account", "_curve", "_key")

    def __init__(self, account: LocalAccount) -> None:
        self._account = account
        self._key = PrivateKey(bytes(account.key))
        self._curve = RecoverableSigner(coincurve.PrivateKey(bytes(account.key)))

    @classmethod
    def from_key(cls, private_key: str | bytes) -> LocalSigner:
        return cls(Account.from_key(private_key))

    @property
    def address(self) -> ChecksumAddress:
        return self._account.address

    def sign_transaction(self, transaction: dict[str, Any]) -> bytes:
        fields = _dynamic_fee_fields(transaction)
        if fields is not None:
            # The lifecycle's shape, its values of the types eth-account's validation and formatters would leave as
            # they are (the address checked once per address): straight into eth-account's own DynamicFeeTransaction
            # encoding, hashed and signed as below. Half of a signature's time was that validation (~55 µs of
            # ~150 µs on a quiet core), on the lifecycle's event loop for every transaction it sends.
            return self._sign_typed(DynamicFeeTransaction.transaction_type, DynamicFeeTransaction(fields))
        if transaction.get("type") not in _TYPED:
            # with the parsed key: eth_account would otherwise derive the public key again for every transaction
            return bytes(Account.sign_transaction(transaction, self._key).raw_transaction)
        # Any other typed transaction (EIP-2718) through eth-account's own TypedTransaction, validated once: hashed,
        # signed with a coincurve key kept from the start and encoded with the signature added to the validated
        # fields — the same bytes as Account.sign_transaction (signatures are deterministic, RFC 6979; the unit tests
        # compare them), without the account object it builds per call, the dict validated and formatted twice more
        # and the key's public half derived again for each signature.
        unsigned = TypedTransaction.from_dict(transaction)
        return self._sign_typed(unsigned.transaction_type, unsigned.transaction)

    def _sign_typed(self, transaction_type: int, unsigned: Any) -> bytes:
        """``unsigned`` (an eth-account typed transaction of validated, formatted fields in ``.dictionary``) signed
        and encoded: ``type ‖ rlp(fields ‖ y parity, r, s)``."""
        signature = self._curve.sign(unsigned.hash())  # r ‖ s ‖ recovery id
        signed = {
            **unsigned.dictionary,
            "v": signature[64],
            "r": int.from_bytes(signature[:32], "big"),
            "s": int.from_bytes(signature[32:64], "big"),
        }
        return bytes([transaction_type]) + bytes(type(unsigned)(signed).payload())

    def sign_typed_data(self, document: dict[str, Any]) -> bytes:
        return self.sign_typed_data_with_digest(document)[1]

    def sign_typed_data_with_digest(self, document: dict[str, Any]) -> tuple[bytes, bytes]:
        # the digest with the domain separator hashed once per domain (chain.eip712), signed as it is with the
        # coincurve key kept from the start: the same signature as Account.sign_message(encode_typed_data(
        # full_message=document)) (r ‖ s ‖ v, v = 27 + recovery id; RFC 6979, compared in the unit tests), without
        # encoding it twice or deriving the key's public half again for each of a credit request's nine signatures
        digest = typed_data_digest(document)
        signature = self._curve.sign(digest)  # r ‖ s ‖ recovery id
        return digest, signature[:64] + bytes([27 + signature[64]])

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


# ---------------------------------------------------------------------------------------------------- production

#: anvil starts with 20 accounts of its public mnemonic (DESIGN.md's account map); every one is public
DEVNET_ACCOUNT_COUNT = DEVNET_ACCOUNTS
#: chain ids of local devnets (ours, plus hardhat's and ganache's default): never a production chain
DEVNET_CHAIN_IDS = frozenset({31337, 31338, 31339, 1337})
MIN_ADMIN_KEY_LENGTH = 32
#: the admin key's empirical entropy (Shannon, per character, times its length) must reach this many bits
MIN_ADMIN_KEY_BITS = 128


class ProductionProfileRefused(ConfigurationError):
    """``CREDITMESH_ENVIRONMENT=production`` with a devnet secret, a devnet chain or a weak admin key."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("production refuses to start: " + "; ".join(problems))
        self.problems = list(problems)


def is_production(environment: str | None = None) -> bool:
    """``environment``, or else ``CREDITMESH_ENVIRONMENT``, is ``production`` (not the contract profile: governance
    tests deploy the production contract profile on devnets)."""
    chosen = environment if environment is not None else os.environ.get("CREDITMESH_ENVIRONMENT", "local")
    return chosen == "production"


@cache
def devnet_private_keys() -> frozenset[bytes]:
    """The private keys of anvil's first ``DEVNET_ACCOUNT_COUNT`` accounts."""
    return frozenset(bytes(devnet_account(index).key) for index in range(DEVNET_ACCOUNT_COUNT))


@cache
def devnet_addresses() -> frozenset[str]:
    """The (lower-case) addresses of anvil's first ``DEVNET_ACCOUNT_COUNT`` accounts."""
    return frozenset(devnet_account(index).address.lower() for index in range(DEVNET_ACCOUNT_COUNT))


def _private_key(value: str) -> bytes | None:
    text = value.strip().removeprefix("0x").removeprefix("0X")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        return None
    return key if len(key) == 32 else None


def admin_key_weakness(key: str) -> str | None:
    """Why ``key`` is too weak for an admin API key, or None. Length and the empirical entropy of its characters:
    ``secrets.token_urlsafe(32)`` (43 characters, ~200 bits) passes; a word, a repeated pattern or a short hex
    string does not."""
    if len(key) < MIN_ADMIN_KEY_LENGTH:
        return f"shorter than {MIN_ADMIN_KEY_LENGTH} characters"
    counts = Counter(key)
    per_char = -sum(n / len(key) * math.log2(n / len(key)) for n in counts.values())
    if per_char * len(key) < MIN_ADMIN_KEY_BITS or len(counts) < 12:
        return f"too little entropy (~{per_char * len(key):.0f} bits over {len(counts)} distinct characters)"
    return None


def loopback_host(host: str) -> bool:
    """Whether ``host`` reaches this machine: a localhost name (``*.localhost`` too), a loopback or unspecified
    address, an IPv4-mapped one, or an IPv4 address in a legacy form the resolver still reads (``127.1``)."""
    name = host.strip("[]").lower().rstrip(".")
    if name in {"localhost", "localhost.localdomain"} or name.endswith(".localhost"):
        return True
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(name)
    except ValueError:
        if not name or set(name) - set("0123456789abcdefx."):
            return False
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(name))  # 127.1, 0x7f.1, 2130706433
        except OSError:
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def _loopback(url: str) -> bool:
    return loopback_host(urlsplit(url).hostname or "")


class _NotChecked(Enum):
    CHAINS_FILE = "not checked"


def production_guard(
    *,
    environment: str | None = None,
    role_keys: Mapping[str, str | None] | None = None,
    role_holders: Mapping[str, str | None] | None = None,
    chains_file: Path | str | Literal[_NotChecked.CHAINS_FILE] | None = _NotChecked.CHAINS_FILE,
    chains: Iterable[tuple[str, int, Sequence[str]]] | None = None,
    admin_api_key: str | None = None,
    local_admin_key_stored: bool = False,
) -> None:
    """Refuse, in production only (``environment`` or ``CREDITMESH_ENVIRONMENT``), every devnet secret, with every
    problem named: a role key that is one of anvil's first 20 keys; a role holder (an address given a role, a Safe
    owner …) that is one of their addresses; no chains file (the default is the loopback devnets); a chain with a
    devnet chain id or, without a chains file, a loopback RPC; a weak admin key; the local admin key still in the
    database. ``Settings`` calls it at start-up, the bootstrap once the database is open, and every
    ``creditmesh admin`` command before it signs anything.

    Args:
        role_keys: role → private key (hex) or None (not set: the caller decides whether that is allowed).
        role_holders: role or holder name → address.
        chains_file: the chains file the process uses, None for none (refused); left out, it is not checked: a
            command checking only the accounts it signs with (``creditmesh admin``'s, whose chains were checked
            once by ``production_guard_chains``) is not refused for a file it was not asked about.
        chains: (name, chain id, RPC URLs) of the chains the process will use.

    Raises:
        ProductionProfileRefused: naming every problem found."""
    if not is_production(environment):
        return
    problems: list[str] = []
    devnet_keys = devnet_private_keys()
    for role, value in (role_keys or {}).items():
        key = None if value is None else _private_key(value)
        if key is not None and key in devnet_keys:
            problems.append(f"the {role} key is one of anvil's public devnet keys")
    devnet = devnet_addresses()
    for holder, address in (role_holders or {}).items():
        if address is not None and address.lower() in devnet:
            problems.append(f"{holder} {address} is one of anvil's public devnet accounts")
    if chains_file is None:
        problems.append("no CREDITMESH_CHAINS_FILE: without one the platform uses the loopback devnets")
    for name, chain_id, rpc_urls in chains or ():
        if chain_id in DEVNET_CHAIN_IDS:
            problems.append(f"chain {name} has the devnet chain id {chain_id}")
        if chains_file is None and any(_loopback(url) for url in rpc_urls):
            problems.append(f"chain {name} uses a loopback RPC")
    if admin_api_key is not None:
        weakness = admin_key_weakness(admin_api_key)
        if weakness is not None:
            problems.append(f"the admin API key is weak: {weakness}")
    if local_admin_key_stored:
        problems.append(
            "the database still accepts the local admin key (it was started in local mode): delete its row from "
            "api_keys before running in production"
        )
    if problems:
        raise ProductionProfileRefused(problems)
