// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice Every custom error of the creditmesh contracts, in one place.
interface Errors {
    // Signatures and offers
    error WrongChain(uint256 offerChainId, uint256 currentChainId);
    error OfferExpired(uint64 expiry, uint256 nowTimestamp);
    error AcceptanceExpired(uint64 deadline, uint256 nowTimestamp);
    error OfferAlreadyUsed(bytes32 offerDigest);
    error InvalidOfferSigner(address recovered);
    error InvalidAcceptanceSignature(address borrower);
    error InvalidAttestationSigner(address recovered);
    error AttestationExpired(uint64 expiry, uint256 nowTimestamp);
    error AttestationBorrowerMismatch(address attested, address borrower);

    // Loans
    error InvalidOffer(string reason);
    error LoanNotActive(uint256 loanId);
    error NotPoolLoan(uint256 loanId);
    error NotTraditionalLoan(uint256 loanId);
    error NothingOwed(uint256 loanId);
    error ZeroAmount();
    error NotYetDefaultable(uint256 loanId, uint256 defaultableAt);

    // Pool
    error AssetMismatch(address expected, address given);
    error RateBelowPoolModel(uint32 offeredBps, uint32 modelBps);
    error InsufficientLiquidity(uint256 requested, uint256 available);
    error InvalidRateModel();
}
