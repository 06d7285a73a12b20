// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {RiskAttestation} from "./Types.sol";

/// @notice Verifies risk attestations signed by the platform's risk signer (EIP-712 domain `creditmesh`, `1`,
/// this chain, this contract).
interface ICreditScoringOracle {
    /// @notice Emitted when a risk signer is added or removed (through governance).
    event RiskSignerChanged(address indexed signer, bool allowed);

    /// @notice The EIP-712 digest of `attestation` under this oracle's domain.
    function attestationDigest(RiskAttestation calldata attestation) external view returns (bytes32);

    /// @notice Reverts with `InvalidAttestationSigner` or `AttestationExpired` unless `signature` is a current
    /// risk signer's signature over `attestation` and the attestation has not expired.
    function validateAttestation(RiskAttestation calldata attestation, bytes calldata signature) external view;
}
