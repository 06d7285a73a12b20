"""Stored quotes back to their EIP-712 structs (hex strings in JSON → bytes, addresses checksummed)."""

from __future__ import annotations

from typing import Any

from eth_utils.address import to_checksum_address

from contracts.typed_data import (
    OFFER_FIELDS,
    RISK_ATTESTATION_FIELDS,
    Acceptance,
    Domain,
    Offer,
    RiskAttestation,
    acceptance_typed_data,
)
from store.aggregator import QuoteRow


def _field(kind: str, value: Any) -> Any:
    if kind == "bytes32":
        return bytes.fromhex(str(value).removeprefix("0x"))
    if kind == "address":
        return to_checksum_address(value)
    return int(value)


def offer_from_row(row: QuoteRow) -> Offer:
    return Offer(**{f["name"]: _field(f["type"], row.offer[f["name"]]) for f in OFFER_FIELDS})


def attestation_from_row(row: QuoteRow) -> RiskAttestation:
    return RiskAttestation(
        **{f["name"]: _field(f["type"], row.attestation[f["name"]]) for f in RISK_ATTESTATION_FIELDS}
    )


def acceptance_for(row: QuoteRow) -> Acceptance:
    """The acceptance a borrower signs for quote ``row``: the offer, valid until the offer expires."""
    offer = offer_from_row(row)
    return Acceptance(offer=offer, deadline=offer.expiry)


def acceptance_document(row: QuoteRow) -> dict[str, Any]:
    """The EIP-712 document the borrower's wallet signs to accept quote ``row`` (``eth_signTypedData_v4``)."""
    return acceptance_typed_data(Domain(row.chain_id, to_checksum_address(row.contract)), acceptance_for(row))
