"""Stored quotes back to their EIP-712 structs (hex strings in JSON → bytes, addresses checksummed)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address

from contracts.typed_data import (
    OFFER_FIELDS,
    RISK_ATTESTATION_FIELDS,
    Acceptance,
    Domain,
    Offer,
    RiskAttestation,
    acceptance_typed_data,
    offer_typed_data,
)


class SignedQuote(Protocol):
    """A stored quote as these helpers read it (the ORM row or the aggregator's ``QuoteView``)."""

    @property
    def offer(self) -> dict[str, Any]: ...
    @property
    def attestation(self) -> dict[str, Any]: ...
    @property
    def chain_id(self) -> int: ...
    @property
    def contract(self) -> str: ...


@lru_cache(maxsize=4096)
def _checksummed(address: str) -> ChecksumAddress:
    """EIP-55 spelling of a stored address, once per address (one keccak each): a credit request's quotes repeat the
    same few addresses, rendered again on every read."""
    return to_checksum_address(address)


def _field(kind: str, value: Any) -> Any:
    if kind == "bytes32":
        return bytes.fromhex(str(value).removeprefix("0x"))
    if kind == "address":
        return _checksummed(value)
    return int(value)


def offer_from_row(row: SignedQuote) -> Offer:
    return Offer(**{f["name"]: _field(f["type"], row.offer[f["name"]]) for f in OFFER_FIELDS})


def attestation_from_row(row: SignedQuote) -> RiskAttestation:
    return RiskAttestation(
        **{f["name"]: _field(f["type"], row.attestation[f["name"]]) for f in RISK_ATTESTATION_FIELDS}
    )


def acceptance_for(row: SignedQuote) -> Acceptance:
    """The acceptance a borrower signs for quote ``row``: the offer, valid until the offer expires."""
    offer = offer_from_row(row)
    return Acceptance(offer=offer, deadline=offer.expiry)


def acceptance_document(row: SignedQuote) -> dict[str, Any]:
    """The EIP-712 document the borrower's wallet signs to accept quote ``row`` (``eth_signTypedData_v4``)."""
    return acceptance_typed_data(Domain(row.chain_id, _checksummed(row.contract)), acceptance_for(row))


def offer_document(row: SignedQuote) -> dict[str, Any]:
    """The EIP-712 ``Offer`` document the quote signer signed."""
    return offer_typed_data(Domain(row.chain_id, _checksummed(row.contract)), offer_from_row(row))
