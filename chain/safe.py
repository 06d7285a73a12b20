"""Safe 1.4.1 multisig transactions: build a ``SafeTx``, sign it off-line as one owner (EIP-712 through
eth-account), check and combine M of N owners' signatures, and execute it.

``safeTxGas``, ``baseGas`` and ``gasPrice`` stay 0 (no refund): with a non-zero ``safeTxGas`` a failing inner call
would not revert ``execTransaction`` but use up the Safe's nonce with an ``ExecutionFailure`` event, so a timelock
call made too early would look like success. Signatures are checked here before anything is sent — each must
recover to an owner, no owner twice, at least the threshold — and packed in ascending owner order, as
``checkNSignatures`` requires."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from chain.artifacts import load_artifact
from chain.deployment import DeployedContract, Deployer
from chain.errors import ChainError
from chain.signers import Signer
from chain.transactions import Call

SAFE_ARTIFACT = "SafeL2"
ZERO_ADDRESS = to_checksum_address("0x" + "00" * 20)
CALL = 0  # Enum.Operation.Call (1 would be a delegatecall)

SAFE_TX_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "SafeTx": [
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "data", "type": "bytes"},
        {"name": "operation", "type": "uint8"},
        {"name": "safeTxGas", "type": "uint256"},
        {"name": "baseGas", "type": "uint256"},
        {"name": "gasPrice", "type": "uint256"},
        {"name": "gasToken", "type": "address"},
        {"name": "refundReceiver", "type": "address"},
        {"name": "nonce", "type": "uint256"},
    ],
}


class SafeError(ChainError):
    """A Safe transaction that cannot be signed, combined or sent as asked."""


class SafeSignatureError(SafeError):
    """A signature that is not an owner's, a duplicate owner, or fewer signatures than the threshold."""


@dataclass(frozen=True, slots=True)
class SafeTransaction:
    """A ``SafeTx`` for one Safe on one chain: a plain call (never a delegatecall), no gas refund."""

    safe: ChecksumAddress
    chain_id: int
    to: ChecksumAddress
    data: bytes
    nonce: int
    value: int = 0

    def typed_data(self) -> dict[str, Any]:
        """The full EIP-712 document an owner signs (what a wallet shows)."""
        return {
            "types": SAFE_TX_TYPES,
            "primaryType": "SafeTx",
            "domain": {"chainId": self.chain_id, "verifyingContract": self.safe},
            "message": {
                "to": self.to,
                "value": self.value,
                "data": self.data,
                "operation": CALL,
                "safeTxGas": 0,
                "baseGas": 0,
                "gasPrice": 0,
                "gasToken": ZERO_ADDRESS,
                "refundReceiver": ZERO_ADDRESS,
                "nonce": self.nonce,
            },
        }

    def _signable(self) -> SignableMessage:
        return encode_typed_data(full_message=self.typed_data())

    @property
    def safe_tx_hash(self) -> bytes:
        """The Safe's ``getTransactionHash``: the EIP-712 digest the owners sign."""
        signable = self._signable()
        return keccak(b"\x19" + signable.version + signable.header + signable.body)

    def signer_of(self, signature: bytes) -> ChecksumAddress:
        try:
            return to_checksum_address(Account.recover_message(self._signable(), signature=signature))
        except (ValueError, TypeError) as err:
            raise SafeSignatureError(f"not a valid ECDSA signature of SafeTx {self.safe_tx_hash.hex()}") from err

    def to_json(self) -> dict[str, Any]:
        fields = asdict(self)
        fields["data"] = "0x" + self.data.hex()
        return fields

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SafeTransaction:
        if int(raw.get("operation", CALL)) != CALL:  # never read otherwise: a file saying so is not what is signed
            raise SafeError(
                f"a SafeTx with operation {raw['operation']}: only a CALL (0) is signed, never a delegatecall"
            )
        return cls(
            safe=to_checksum_address(raw["safe"]),
            chain_id=int(raw["chain_id"]),
            to=to_checksum_address(raw["to"]),
            data=bytes.fromhex(str(raw["data"]).removeprefix("0x")),
            nonce=int(raw["nonce"]),
            value=int(raw.get("value", 0)),
        )


@dataclass(frozen=True, slots=True)
class OwnerSignature:
    """One owner's signature of one SafeTx: what ``sign`` writes to a file and ``submit`` reads."""

    transaction: SafeTransaction
    owner: ChecksumAddress
    signature: bytes

    def save(self, path: Path) -> None:
        document = {
            "safeTxHash": "0x" + self.transaction.safe_tx_hash.hex(),
            "owner": self.owner,
            "signature": "0x" + self.signature.hex(),
            "transaction": self.transaction.to_json(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> OwnerSignature:
        try:
            raw = json.loads(path.read_text())
            return cls(
                transaction=SafeTransaction.from_json(raw["transaction"]),
                owner=to_checksum_address(raw["owner"]),
                signature=bytes.fromhex(str(raw["signature"]).removeprefix("0x")),
            )
        except (OSError, ValueError, KeyError) as err:
            raise SafeError(f"cannot read Safe signature file {path}: {err}") from err


def sign_safe_transaction(transaction: SafeTransaction, owner: Signer) -> OwnerSignature:
    """Sign off-line as ``owner`` (no chain access needed)."""
    signature = owner.sign_typed_data(transaction.typed_data())
    return OwnerSignature(transaction, owner.address, signature)


def pack_signatures(
    transaction: SafeTransaction,
    signatures: Iterable[OwnerSignature],
    owners: Iterable[ChecksumAddress],
    threshold: int,
) -> bytes:
    """The ``signatures`` argument of ``execTransaction``: at least ``threshold`` owners' signatures of exactly
    this transaction, sorted by owner address. Refuses anything the Safe would refuse (GS020-GS026)."""
    owner_set = {to_checksum_address(owner) for owner in owners}
    by_owner: dict[ChecksumAddress, bytes] = {}
    for signed in signatures:
        if signed.transaction != transaction:
            raise SafeSignatureError(
                f"{signed.owner}'s signature is for another SafeTx "
                f"({signed.transaction.safe_tx_hash.hex()}, not {transaction.safe_tx_hash.hex()})"
            )
        recovered = transaction.signer_of(signed.signature)
        if recovered != signed.owner:
            raise SafeSignatureError(f"the signature said to be {signed.owner}'s was made by {recovered}")
        if recovered not in owner_set:
            raise SafeSignatureError(f"{recovered} is not an owner of Safe {transaction.safe}")
        by_owner[recovered] = signed.signature
    if len(by_owner) < threshold:
        raise SafeSignatureError(
            f"Safe {transaction.safe} needs {threshold} owners' signatures, got {len(by_owner)} "
            f"({', '.join(sorted(by_owner)) or 'none'})"
        )
    ordered = sorted(by_owner.items(), key=lambda item: int(item[0], 16))
    return b"".join(signature for _, signature in ordered)


def safe_contract(w3: Web3, address: ChecksumAddress) -> Contract:
    return w3.eth.contract(address=address, abi=load_artifact(SAFE_ARTIFACT).abi)


@dataclass(frozen=True, slots=True)
class SafeState:
    owners: tuple[ChecksumAddress, ...]
    threshold: int
    nonce: int


def read_safe(safe: Contract) -> SafeState:
    return SafeState(
        owners=tuple(to_checksum_address(owner) for owner in safe.functions.getOwners().call()),
        threshold=int(safe.functions.getThreshold().call()),
        nonce=int(safe.functions.nonce().call()),
    )


def exec_transaction_call(safe: Contract, transaction: SafeTransaction, signatures: bytes) -> Call:
    """``execTransaction`` with the packed signatures; anyone may send it."""
    return Call.function(
        safe,
        "execTransaction",
        transaction.to,
        transaction.value,
        transaction.data,
        CALL,
        0,
        0,
        0,
        ZERO_ADDRESS,
        ZERO_ADDRESS,
        signatures,
    )


def setup_initializer(owners: Iterable[ChecksumAddress], threshold: int) -> bytes:
    """``Safe.setup`` calldata for a new Safe proxy: owners, threshold, no module, no fallback handler, no payment."""
    owner_list = sorted({to_checksum_address(owner) for owner in owners}, key=lambda owner: int(owner, 16))
    if not 1 <= threshold <= len(owner_list):
        raise SafeError(f"a threshold of {threshold} with {len(owner_list)} owners")
    singleton = Web3().eth.contract(abi=load_artifact(SAFE_ARTIFACT).abi)
    data = singleton.encode_abi(
        "setup", [owner_list, threshold, ZERO_ADDRESS, b"", ZERO_ADDRESS, ZERO_ADDRESS, 0, ZERO_ADDRESS]
    )
    return bytes.fromhex(data[2:])


SAFE_PROXY_ARTIFACT = "SafeProxy"


def deploy_safe(
    deployer: Deployer, key: str, owners: Iterable[ChecksumAddress], threshold: int, salt_nonce: int = 0
) -> ChecksumAddress:
    """Deploy (once) a Safe 1.4.1 proxy with ``owners`` and ``threshold`` through a SafeProxyFactory, both
    singletons deployed beside it, and record it as ``key`` (its runtime code is the SafeProxy artifact's)."""
    existing = deployer.record.contracts.get(key)
    if existing is not None and deployer.w3.eth.get_code(existing.address):
        return existing.address
    singleton = deployer.deploy(f"{key}:singleton", SAFE_ARTIFACT)
    deployer.deploy(f"{key}:factory", "SafeProxyFactory")
    initializer = setup_initializer(owners, threshold)
    receipt = deployer.step(
        f"create-{key}", f"{key}:factory", "createProxyWithNonce", singleton, initializer, salt_nonce
    )
    if receipt is None:
        raise SafeError(f"the step creating {key} is recorded but {key} is not: remove the step to create it again")
    created = deployer.contract(f"{key}:factory").events.ProxyCreation().process_receipt(receipt, errors=DISCARD)
    proxy = to_checksum_address(created[0]["args"]["proxy"])
    deployer.record.contracts[key] = DeployedContract(
        artifact=SAFE_PROXY_ARTIFACT,
        address=proxy,
        tx_hash=receipt["transactionHash"].to_0x_hex(),
        block=int(receipt["blockNumber"]),
        constructor_args=[singleton],
    )
    deployer.save()
    return proxy
