"""EIP-712 ``RiskAttestation``s signed by the risk signer, verified on-chain by the CreditScoringOracle.

The attestation binds the borrower's wallet, the grade (uint8, 1 = A … 5 = E), the maximum LTV in basis points,
an expiry (uint64 seconds), ``decisionHash`` — keccak256 of the decision's RFC 8785 canonical JSON, which
itself carries the inputs hash — so that a loan on-chain points back to the exact stored decision, and the nonce of
the offer it goes with: the CreditAggregator accepts it only with that offer, and only once (the nonce is consumed).
The maximum LTV holds for the life of the loan: it is stored with the loan and caps every collateral withdrawal.
"""

from __future__ import annotations

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address

from contracts.typed_data import Domain, RiskAttestation, recover, risk_attestation_typed_data, sign
from risk.errors import RiskError
from risk.policy import RiskDecision


class AttestationRefused(RiskError):
    """Only an approved decision with a grade can be attested."""


def attest(
    decision: RiskDecision, borrower: str, domain: Domain, signer_key: bytes | str, expiry: int, nonce: int
) -> tuple[RiskAttestation, bytes]:
    """The attestation of an approved decision for the offer with ``nonce``, and the risk signer's 65-byte
    signature over it."""
    if not decision.approved or decision.grade is None:
        raise AttestationRefused("a declined decision cannot be attested")
    if not 0 < expiry < 2**64:
        raise AttestationRefused(f"expiry {expiry} is not a uint64 timestamp")
    if not 0 <= nonce < 2**256:
        raise AttestationRefused(f"nonce {nonce} is not a uint256")
    attestation = RiskAttestation(
        borrower=to_checksum_address(borrower),
        grade=decision.grade,
        maxLtvBps=decision.max_ltv_bps,
        expiry=expiry,
        decisionHash=decision.decision_hash(),
        nonce=nonce,
    )
    return attestation, sign(risk_attestation_typed_data(domain, attestation), signer_key)


def attestation_signer(domain: Domain, attestation: RiskAttestation, signature: bytes) -> ChecksumAddress:
    """Who signed an attestation (for off-chain checks before relaying)."""
    return recover(risk_attestation_typed_data(domain, attestation), signature)
