"""The creditmesh EIP-712 types on the Python side, mirroring ``contracts/interfaces/Types.sol``.

Domain: name ``creditmesh``, version ``1``, the chain id and the verifying contract. ``Offer``, ``Acceptance`` and
``Repayment`` are verified by the CreditAggregator, ``RiskAttestation`` by the CreditScoringOracle.
Units follow the contracts: token base units, annual rate in basis points, seconds. As JSON (what the API hands a
client to sign) a ``uint256`` is a decimal string (``TEXT_INTEGER_TYPES``), bytes are 0x-hex.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_keys.exceptions import BadSignature
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.exceptions import ValidationError

from chain.eip712 import typed_data_digest

DOMAIN_NAME = "creditmesh"
DOMAIN_VERSION = "1"
ZERO_ADDRESS = to_checksum_address("0x" + "00" * 20)
ZERO_BYTES32 = b"\x00" * 32

OFFER_FIELDS: list[dict[str, str]] = [
    {"name": "providerId", "type": "bytes32"},
    {"name": "pool", "type": "address"},
    {"name": "borrower", "type": "address"},
    {"name": "asset", "type": "address"},
    {"name": "principal", "type": "uint256"},
    {"name": "rateBps", "type": "uint32"},
    {"name": "term", "type": "uint64"},
    {"name": "originationFee", "type": "uint256"},
    {"name": "collateralAsset", "type": "address"},
    {"name": "collateralAmount", "type": "uint256"},
    {"name": "chainId", "type": "uint256"},
    {"name": "termsHash", "type": "bytes32"},
    {"name": "expiry", "type": "uint64"},
    {"name": "nonce", "type": "uint256"},
]
ACCEPTANCE_FIELDS: list[dict[str, str]] = [
    {"name": "offer", "type": "Offer"},
    {"name": "deadline", "type": "uint64"},
]
REPAYMENT_FIELDS: list[dict[str, str]] = [
    {"name": "loanId", "type": "uint256"},
    {"name": "amount", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint64"},
]
#: ``Repayment.amount`` that pays everything owed when mined and closes the loan (the contract caps the amount)
REPAY_ALL = 2**256 - 1
RISK_ATTESTATION_FIELDS: list[dict[str, str]] = [
    {"name": "borrower", "type": "address"},
    {"name": "grade", "type": "uint8"},
    {"name": "maxLtvBps", "type": "uint16"},
    {"name": "expiry", "type": "uint64"},
    {"name": "decisionHash", "type": "bytes32"},
    {"name": "nonce", "type": "uint256"},
]
#: EIP-2612's ``Permit`` (signed under the token's own domain, see ``TokenDomain``)
PERMIT_FIELDS: list[dict[str, str]] = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
#: the integer types written as decimal strings in JSON: JavaScript's ``JSON.parse`` reads every number as a double,
#: exact to 2^53 only, and 1 WETH is 10^18 base units: a browser wallet signed the rounded amount (the acceptance
#: then refused) and ethers refused to encode it. Every EIP-712 encoder takes a decimal string for a uintN (ethers,
#: viem, ``eth_signTypedData_v4``, eth-account). The smaller ones (a rate in basis points, seconds) stay numbers: the
#: platform keeps them below 2^53.
TEXT_INTEGER_TYPES = frozenset({"uint256", "int256"})
_EIP712_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


@dataclass(frozen=True, slots=True)
class Domain:
    """The EIP-712 domain of one contract on one chain."""

    chain_id: int
    verifying_contract: ChecksumAddress

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


@dataclass(frozen=True, slots=True)
class TokenDomain:
    """An ERC-20's own EIP-712 domain (its EIP-5267 ``eip712Domain()``), under which its EIP-2612 permits are signed."""

    name: str
    version: str
    chain_id: int
    verifying_contract: ChecksumAddress

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _message(struct: object) -> dict[str, Any]:
    """A flat struct's fields in declaration order, as ``dataclasses.asdict`` gives them without its deep copy of
    every value (ints, bytes and strings here; the quote path builds a dozen of these per request)."""
    kind = type(struct)
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(field.name for field in fields(kind))  # type: ignore[arg-type]
    return {name: getattr(struct, name) for name in names}


@dataclass(frozen=True, slots=True)
class Permit:
    """An EIP-2612 permit: ``owner`` lets ``spender`` move up to ``value`` base units, signed with the owner's token
    ``nonce`` (``nonces(owner)``), until ``deadline`` (seconds)."""

    owner: ChecksumAddress
    spender: ChecksumAddress
    value: int
    nonce: int
    deadline: int

    def as_message(self) -> dict[str, Any]:
        return _message(self)


@dataclass(frozen=True, slots=True)
class Offer:
    """A lender's offer as the quote signer signs it (see ``Types.sol``)."""

    providerId: bytes
    pool: ChecksumAddress
    borrower: ChecksumAddress
    asset: ChecksumAddress
    principal: int
    rateBps: int
    term: int
    originationFee: int
    collateralAsset: ChecksumAddress
    collateralAmount: int
    chainId: int
    termsHash: bytes
    expiry: int
    nonce: int

    def as_message(self) -> dict[str, Any]:
        return _message(self)

    def as_abi_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, field["name"]) for field in OFFER_FIELDS)

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Offer:
        return cls(**{field["name"]: message[field["name"]] for field in OFFER_FIELDS})


@dataclass(frozen=True, slots=True)
class Acceptance:
    """The borrower's acceptance of an offer; the offer is nested so a wallet shows every term."""

    offer: Offer
    deadline: int

    def as_message(self) -> dict[str, Any]:
        return {"offer": self.offer.as_message(), "deadline": self.deadline}

    def as_abi_tuple(self) -> tuple[Any, ...]:
        return (self.offer.as_abi_tuple(), self.deadline)


@dataclass(frozen=True, slots=True)
class Repayment:
    """A borrower's consent to one relayed repayment of a pool loan (``repayWithPermit``): up to ``amount`` base units
    of the debt asset (``REPAY_ALL``: everything owed), once (``nonce`` from the borrower's nonce bitmap at the
    CreditAggregator, as ``nonceUsed(borrower, nonce)`` reports it), until ``deadline`` (seconds)."""

    loanId: int
    amount: int
    nonce: int
    deadline: int

    def as_message(self) -> dict[str, Any]:
        return _message(self)

    def as_abi_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, field["name"]) for field in REPAYMENT_FIELDS)


@dataclass(frozen=True, slots=True)
class RiskAttestation:
    """The risk decision for a borrower as the risk signer signs it, for one offer: ``nonce`` is the offer's, so
    the attestation opens only that offer's loan and is used up with the offer's nonce."""

    borrower: ChecksumAddress
    grade: int
    maxLtvBps: int
    expiry: int
    decisionHash: bytes
    nonce: int

    def as_message(self) -> dict[str, Any]:
        return _message(self)

    def as_abi_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, field["name"]) for field in RISK_ATTESTATION_FIELDS)


def offer_typed_data(domain: Domain, offer: Offer) -> dict[str, Any]:
    """The full EIP-712 document for an offer (``eth_signTypedData_v4`` input)."""
    return {
        "types": {"EIP712Domain": _EIP712_DOMAIN_FIELDS, "Offer": OFFER_FIELDS},
        "primaryType": "Offer",
        "domain": domain.as_dict(),
        "message": offer.as_message(),
    }


def acceptance_typed_data(domain: Domain, acceptance: Acceptance) -> dict[str, Any]:
    """The full EIP-712 document for an acceptance: what a borrower's wallet signs."""
    return _acceptance_document(domain, acceptance.as_message())


def acceptance_json_typed_data(domain: Domain, offer: dict[str, Any]) -> dict[str, Any]:
    """``acceptance_typed_data`` of an offer given as its JSON values (bytes as 0x-hex, each of
    ``TEXT_INTEGER_TYPES`` as a decimal string), valid until the offer expires: the document the API hands the
    borrower's wallet, the same digest."""
    return _acceptance_document(domain, {"offer": offer, "deadline": offer["expiry"]})


#: an acceptance document's ``types``, as the API hands them (the wallet signs no other)
ACCEPTANCE_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": _EIP712_DOMAIN_FIELDS,
    "Acceptance": ACCEPTANCE_FIELDS,
    "Offer": OFFER_FIELDS,
}


def _acceptance_document(domain: Domain, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "types": dict(ACCEPTANCE_TYPES),
        "primaryType": "Acceptance",
        "domain": domain.as_dict(),
        "message": message,
    }


def repayment_typed_data(domain: Domain, repayment: Repayment) -> dict[str, Any]:
    """The full EIP-712 document for a repayment (domain of the CreditAggregator): what the borrower signs so that
    the platform may relay ``repayWithPermit``."""
    return {
        "types": {"EIP712Domain": _EIP712_DOMAIN_FIELDS, "Repayment": REPAYMENT_FIELDS},
        "primaryType": "Repayment",
        "domain": domain.as_dict(),
        "message": repayment.as_message(),
    }


def permit_typed_data(domain: TokenDomain, permit: Permit) -> dict[str, Any]:
    """The full EIP-712 document for an EIP-2612 permit under the token's domain."""
    return {
        "types": {"EIP712Domain": _EIP712_DOMAIN_FIELDS, "Permit": PERMIT_FIELDS},
        "primaryType": "Permit",
        "domain": domain.as_dict(),
        "message": permit.as_message(),
    }


def permit_abi_tuple(permit: Permit, signature: bytes) -> tuple[int, int, int, bytes, bytes]:
    """``(value, deadline, v, r, s)``: the contracts' ``CollateralPermit`` from a permit and its 65-byte signature."""
    return (permit.value, permit.deadline, signature[64], signature[:32], signature[32:64])


def risk_attestation_typed_data(domain: Domain, attestation: RiskAttestation) -> dict[str, Any]:
    """The full EIP-712 document for a risk attestation (domain of the CreditScoringOracle)."""
    return {
        "types": {"EIP712Domain": _EIP712_DOMAIN_FIELDS, "RiskAttestation": RISK_ATTESTATION_FIELDS},
        "primaryType": "RiskAttestation",
        "domain": domain.as_dict(),
        "message": attestation.as_message(),
    }


def _signable(typed_data: dict[str, Any]) -> SignableMessage:
    return encode_typed_data(full_message=typed_data)


def digest(typed_data: dict[str, Any]) -> bytes:
    """The EIP-712 digest ``keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message))`` (the domain separator
    hashed once per domain)."""
    return typed_data_digest(typed_data)


def sign(typed_data: dict[str, Any], private_key: bytes | str) -> bytes:
    """A 65-byte ``r ‖ s ‖ v`` signature over the typed data with a local key."""
    signed = Account.sign_message(_signable(typed_data), private_key)
    return bytes(signed.signature)


#: what recovering a signature raises for one no key made: a v byte that is no recovery id, an s out of range
#: (``ValueError``), r or s zero (``BadSignature``), a length other than 65 bytes (eth-utils' ``ValidationError``) —
#: all signatures an ERC-1271 wallet may send (a Safe's of several owners, its approved-hash form)
UNRECOVERABLE = (ValueError, BadSignature, ValidationError)


def recover(typed_data: dict[str, Any], signature: bytes) -> ChecksumAddress:
    """The address that signed ``typed_data``."""
    return to_checksum_address(Account.recover_message(_signable(typed_data), signature=signature))
