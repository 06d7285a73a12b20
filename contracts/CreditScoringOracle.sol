// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {Errors} from "./interfaces/Errors.sol";
import {ICreditScoringOracle} from "./interfaces/ICreditScoringOracle.sol";
import {RiskAttestation} from "./interfaces/Types.sol";
import {TypedDataHash} from "./libraries/TypedDataHash.sol";

/// @notice Verifies risk attestations signed by any holder of RISK_SIGNER_ROLE (several during a key rotation).
contract CreditScoringOracle is ICreditScoringOracle, AccessControl, EIP712 {
    bytes32 public constant RISK_SIGNER_ROLE = keccak256("RISK_SIGNER_ROLE");

    constructor(address admin, address riskSigner) EIP712("creditmesh", "1") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(RISK_SIGNER_ROLE, riskSigner);
    }

    /// @inheritdoc ICreditScoringOracle
    function attestationDigest(RiskAttestation calldata attestation) public view returns (bytes32) {
        return _hashTypedDataV4(TypedDataHash.hash(attestation));
    }

    /// @inheritdoc ICreditScoringOracle
    function validateAttestation(RiskAttestation calldata attestation, bytes calldata signature) external view {
        (address recovered,,) = ECDSA.tryRecover(attestationDigest(attestation), signature);
        if (recovered == address(0) || !hasRole(RISK_SIGNER_ROLE, recovered)) {
            revert Errors.InvalidAttestationSigner(recovered);
        }
        if (block.timestamp > attestation.expiry) revert Errors.AttestationExpired(attestation.expiry, block.timestamp);
    }

    function _grantRole(bytes32 role, address account) internal override returns (bool granted) {
        granted = super._grantRole(role, account);
        if (granted && role == RISK_SIGNER_ROLE) emit RiskSignerChanged(account, true);
    }

    function _revokeRole(bytes32 role, address account) internal override returns (bool revoked) {
        revoked = super._revokeRole(role, account);
        if (revoked && role == RISK_SIGNER_ROLE) emit RiskSignerChanged(account, false);
    }
}
