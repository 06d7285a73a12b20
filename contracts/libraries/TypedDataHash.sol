// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Acceptance, Offer, Repayment, RiskAttestation} from "../interfaces/Types.sol";

/// @notice EIP-712 struct hashes of the creditmesh types. The type strings are mirrored in contracts/typed_data.py.
library TypedDataHash {
    bytes internal constant OFFER_TYPE = "Offer(bytes32 providerId,address pool,address borrower,address asset,"
        "uint256 principal,uint32 rateBps,uint64 term,uint256 originationFee,address collateralAsset,"
        "uint256 collateralAmount,uint256 chainId,bytes32 termsHash,uint64 expiry,uint256 nonce)";
    bytes32 internal constant OFFER_TYPEHASH = keccak256(OFFER_TYPE);
    bytes32 internal constant ACCEPTANCE_TYPEHASH =
        keccak256(abi.encodePacked("Acceptance(Offer offer,uint64 deadline)", OFFER_TYPE));
    bytes32 internal constant REPAYMENT_TYPEHASH =
        keccak256("Repayment(uint256 loanId,uint256 amount,uint256 nonce,uint64 deadline)");
    bytes32 internal constant RISK_ATTESTATION_TYPEHASH = keccak256(
        "RiskAttestation(address borrower,uint8 grade,uint16 maxLtvBps,uint64 expiry,bytes32 decisionHash,uint256 nonce)"
    );

    // Every member of these structs is a static type, so abi.encode of the struct equals the EIP-712
    // encodeData of its members in order.
    function hash(Offer calldata offer) internal pure returns (bytes32) {
        return keccak256(abi.encode(OFFER_TYPEHASH, offer));
    }

    function hash(Acceptance calldata acceptance) internal pure returns (bytes32) {
        return hashAcceptance(hash(acceptance.offer), acceptance.deadline);
    }

    /// @notice The Acceptance struct hash from its offer's struct hash (so that openLoan hashes the offer once).
    function hashAcceptance(bytes32 offerHash, uint64 deadline) internal pure returns (bytes32) {
        return keccak256(abi.encode(ACCEPTANCE_TYPEHASH, offerHash, deadline));
    }

    function hash(Repayment calldata repayment) internal pure returns (bytes32) {
        return keccak256(abi.encode(REPAYMENT_TYPEHASH, repayment));
    }

    function hash(RiskAttestation calldata attestation) internal pure returns (bytes32) {
        return keccak256(abi.encode(RISK_ATTESTATION_TYPEHASH, attestation));
    }
}
